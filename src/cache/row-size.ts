/**
 * Estimated heap bytes of one L1 entry, so L1's byte budget bounds real
 * memory. JS gives no exact object sizes; the constants are JSC's typical
 * layouts (object header + inline slots, UTF-16 strings, a typed array's
 * cell) and err on the large side: the leak test checks the budget holds for
 * the heap.
 */
const ENTRY_OVERHEAD = 160; // the entry object, lru-cache's slot arrays and map entry
const ROW_OVERHEAD = 96; // the packed row's typed-array cell and its storage's header (packed-row.ts)

/** An entry for `key` holding a row of `rowBytes` stored bytes (0: a negative entry or a floor). */
export function entryBytes(key: string, rowBytes: number): number {
  return ENTRY_OVERHEAD + 24 + key.length * 2 + (rowBytes > 0 ? ROW_OVERHEAD + rowBytes : 0);
}
