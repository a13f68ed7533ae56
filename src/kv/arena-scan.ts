import type { SlabStore } from "./arena-slabs.ts";
import { RECORD_HEADER_BYTES } from "./arena-slabs.ts";
import type { ArenaTable } from "./arena-table.ts";
import type { ScanPage } from "./kv-node.ts";

const MAX_OPEN_SCANS = 16;
const utf8 = new TextDecoder();

/**
 * The matching keys at the moment a scan started, copied as UTF-8 into one
 * buffer. A copy (not slot positions) because a migration deletes while it
 * scans and writes may rehash the table or compaction may move records: none
 * of that can make the scan skip a key that existed at the start. One buffer
 * plus an offsets array keeps even a full scan of a million keys off the GC heap.
 */
class KeySnapshot {
  constructor(
    private readonly bytes: Uint8Array,
    /** ends[i] is where key i stops; key i starts at ends[i - 1] (or 0). */
    private readonly ends: Uint32Array,
  ) {}

  get count(): number {
    return this.ends.length;
  }

  keys(from: number, to: number): string[] {
    const out = new Array<string>(to - from);
    for (let i = from; i < to; i++) {
      const start = i === 0 ? 0 : this.ends[i - 1]!;
      out[i - from] = utf8.decode(this.bytes.subarray(start, this.ends[i]!));
    }
    return out;
  }
}

function startsWith(slab: Uint8Array, at: number, prefix: Uint8Array): boolean {
  for (let j = 0; j < prefix.length; j++) if (slab[at + j] !== prefix[j]) return false;
  return true;
}

/** Copies every live key starting with `prefix` (two passes: size, then copy). */
function snapshot(table: ArenaTable, slabs: SlabStore, prefix: Uint8Array): KeySnapshot {
  let count = 0;
  let total = 0;
  const capacity = table.capacity;
  for (let i = 0; i < capacity; i++) {
    const id = table.slabAt(i);
    if (id < 0) continue;
    const off = table.offsetAt(i);
    const len = slabs.keyLength(id, off);
    if (len < prefix.length || !startsWith(slabs.bytes(id), off + RECORD_HEADER_BYTES, prefix)) continue;
    count++;
    total += len;
  }
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(count);
  let n = 0;
  let at = 0;
  for (let i = 0; i < capacity && n < count; i++) {
    const id = table.slabAt(i);
    if (id < 0) continue;
    const off = table.offsetAt(i);
    const len = slabs.keyLength(id, off);
    const from = off + RECORD_HEADER_BYTES;
    const slab = slabs.bytes(id);
    if (len < prefix.length || !startsWith(slab, from, prefix)) continue;
    bytes.set(slab.subarray(from, from + len), at);
    at += len;
    ends[n++] = at;
  }
  return new KeySnapshot(bytes, ends);
}

/**
 * Open scans of one arena node. Cursor = `<scan id>:<offset>`, like
 * MemoryKvNode; only the newest few scans are kept so abandoned ones cannot
 * pin memory.
 */
export class ArenaScans {
  private readonly open = new Map<number, KeySnapshot>();
  private seq = 0;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly table: ArenaTable,
    private readonly slabs: SlabStore,
  ) {}

  page(cursor: string, count: number, prefix: string): ScanPage {
    let id: number;
    let offset: number;
    let snap: KeySnapshot | undefined;
    if (cursor === "0") {
      id = ++this.seq;
      offset = 0;
      snap = snapshot(this.table, this.slabs, this.encoder.encode(prefix));
      this.open.set(id, snap);
      if (this.open.size > MAX_OPEN_SCANS) this.open.delete(this.open.keys().next().value as number);
    } else {
      const [a, b] = cursor.split(":");
      id = Number(a);
      offset = Number(b);
      snap = this.open.get(id);
      if (!snap || !Number.isInteger(offset) || offset < 0) throw new Error(`scan cursor "${cursor}" is unknown or expired`);
    }
    const end = Math.min(snap.count, offset + Math.max(1, count));
    const keys = snap.keys(Math.min(offset, end), end);
    if (end >= snap.count) {
      this.open.delete(id);
      return { cursor: "0", keys };
    }
    return { cursor: `${id}:${end}`, keys };
  }

  clear(): void {
    this.open.clear();
  }
}
