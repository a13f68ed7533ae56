import type { StoredRow } from "../kv/kv-node.ts";

/**
 * Estimated heap bytes of one L1 entry, so L1's byte budget bounds real
 * memory. JS gives no exact object sizes; the constants are JSC's typical
 * layouts (object header + inline slots, 8-byte numbers, UTF-16 strings) and
 * err on the large side: the leak test checks the budget holds for RSS.
 */
const ENTRY_OVERHEAD = 160; // the entry object, lru-cache's slot arrays and map entry
const ROW_OVERHEAD = 64; // the row object and its values array header

function valueBytes(v: unknown): number {
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return 8;
  if (typeof v === "string") return 24 + v.length * 2;
  if (Array.isArray(v)) {
    let n = 32;
    for (const x of v) n += valueBytes(x);
    return n;
  }
  return 64;
}

export function entryBytes(key: string, row: StoredRow | undefined): number {
  let n = ENTRY_OVERHEAD + 24 + key.length * 2;
  if (row !== undefined) {
    n += ROW_OVERHEAD;
    for (const v of row.values) n += valueBytes(v);
  }
  return n;
}
