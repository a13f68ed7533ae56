/**
 * Append-only byte slabs for the arena node. Every record is
 *
 *   [key length u32 LE][row length u32 LE][key bytes (UTF-8)][row bytes (row-codec layout)]
 *
 * and lives inside one slab, so a record is addressed by (slab id, offset) and
 * the JS heap holds a few dozen large Uint8Arrays instead of objects per row.
 * Records are never resized in place except for a same-length rewrite; an
 * overwrite or delete marks the old bytes dead, and the owner evacuates slabs
 * that are mostly dead (see `pickVictims`) so churn cannot grow memory forever.
 */

export const RECORD_HEADER_BYTES = 8;
/** New slabs double from here, so a node holding a handful of rows stays small. */
const MIN_SLAB_BYTES = 64 * 1024;
/** Large enough that slab count stays in the tens per GB, small enough to evacuate in ~1 ms. */
export const MAX_SLAB_BYTES = 4 * 1024 * 1024;
/** Records above this get a slab of their own instead of wasting a shared slab's tail. */
const DEDICATED_RECORD_BYTES = MAX_SLAB_BYTES / 4;
/** A slab whose dead share reaches this is worth evacuating; also the store-wide trigger. */
const EVACUATE_RATIO = 0.25;
/** Below this many dead bytes compaction is not worth a table walk. */
const MIN_DEAD_TO_COMPACT = 256 * 1024;

export class SlabStore {
  private readonly slabs: (Buffer | undefined)[] = [];
  private readonly views: (DataView | undefined)[] = [];
  /** Dead bytes per slab: overwritten/deleted records plus the unusable tail of a sealed slab. */
  private readonly dead: number[] = [];
  private readonly freeIds: number[] = [];
  /** Slab being appended to (-1 before the first append or after sealing). */
  private cur = -1;
  private pos = 0;
  private nextSize = MIN_SLAB_BYTES;
  /** Location of the most recent `append`, returned through fields so appends allocate nothing. */
  lastSlab = 0;
  lastOffset = 0;
  /** Sum of slab sizes. */
  slabBytes = 0;
  /** Sum of `dead`. */
  deadBytes = 0;

  /** A Buffer so readers can build strings straight from slab bytes (`toString(enc, from, to)`). */
  bytes(id: number): Buffer {
    return this.slabs[id]!;
  }

  view(id: number): DataView {
    return this.views[id]!;
  }

  keyLength(id: number, off: number): number {
    return this.views[id]!.getUint32(off, true);
  }

  rowLength(id: number, off: number): number {
    return this.views[id]!.getUint32(off + 4, true);
  }

  /** Offset of the row bytes of the record at `off`. */
  rowStart(id: number, off: number): number {
    return off + RECORD_HEADER_BYTES + this.views[id]!.getUint32(off, true);
  }

  recordLength(id: number, off: number): number {
    const v = this.views[id]!;
    return RECORD_HEADER_BYTES + v.getUint32(off, true) + v.getUint32(off + 4, true);
  }

  /** Whether the record at (id, off) has exactly the key `key[at..at + len)`. */
  keyEquals(id: number, off: number, key: Uint8Array, at: number, len: number): boolean {
    const s = this.slabs[id]!;
    if (this.views[id]!.getUint32(off, true) !== len) return false;
    const k = off + RECORD_HEADER_BYTES - at;
    for (let j = at; j < at + len; j++) if (s[k + j] !== key[j]) return false;
    return true;
  }

  /**
   * Appends a record with key `key[0..keyLen)` and room for `rowLen` row bytes,
   * which the caller fills at `rowStart(lastSlab, lastOffset)`.
   */
  append(key: Uint8Array, keyLen: number, rowLen: number): void {
    const need = RECORD_HEADER_BYTES + keyLen + rowLen;
    if (need > DEDICATED_RECORD_BYTES) {
      this.lastSlab = this.newSlab(need);
      this.lastOffset = 0;
    } else {
      if (this.cur < 0 || this.pos + need > this.slabs[this.cur]!.length) {
        this.sealCurrent();
        // Sizes double towards MAX_SLAB_BYTES, which always fits a shared record.
        while (this.nextSize < need) this.nextSize *= 2;
        this.cur = this.newSlab(this.nextSize);
        this.pos = 0;
        this.nextSize = Math.min(MAX_SLAB_BYTES, this.nextSize * 2);
      }
      this.lastSlab = this.cur;
      this.lastOffset = this.pos;
      this.pos += need;
    }
    const s = this.slabs[this.lastSlab]!;
    const v = this.views[this.lastSlab]!;
    v.setUint32(this.lastOffset, keyLen, true);
    v.setUint32(this.lastOffset + 4, rowLen, true);
    s.set(keyLen === key.length ? key : key.subarray(0, keyLen), this.lastOffset + RECORD_HEADER_BYTES);
  }

  /** Copies the record at (id, off) to the append position; the new location is in lastSlab/lastOffset. */
  copyRecord(id: number, off: number): void {
    const src = this.slabs[id]!;
    const keyLen = this.keyLength(id, off);
    const rowLen = this.rowLength(id, off);
    this.append(src.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + keyLen), keyLen, rowLen);
    const from = off + RECORD_HEADER_BYTES + keyLen;
    this.slabs[this.lastSlab]!.set(src.subarray(from, from + rowLen), this.rowStart(this.lastSlab, this.lastOffset));
  }

  /** Counts `n` bytes of slab `id` as garbage; a non-current slab that is all garbage is freed at once. */
  markDead(id: number, n: number): void {
    const d = this.dead[id]! + n;
    this.dead[id] = d;
    this.deadBytes += n;
    if (id !== this.cur && d >= this.slabs[id]!.length) this.free(id);
  }

  /** Cheap check after each batch: is enough memory dead to pay for a table walk? */
  needsCompaction(): boolean {
    return this.deadBytes >= MIN_DEAD_TO_COMPACT && this.deadBytes >= this.slabBytes * EVACUATE_RATIO;
  }

  /**
   * Flags (by slab id) the slabs to evacuate, or undefined if none is dead
   * enough. A mostly-dead current slab is sealed first so it can be evacuated too.
   */
  pickVictims(): Uint8Array | undefined {
    if (this.cur >= 0 && this.dead[this.cur]! >= this.slabs[this.cur]!.length * EVACUATE_RATIO) this.sealCurrent();
    let victims: Uint8Array | undefined;
    for (let id = 0; id < this.slabs.length; id++) {
      const s = this.slabs[id];
      if (s === undefined || id === this.cur || this.dead[id]! < s.length * EVACUATE_RATIO) continue;
      victims ??= new Uint8Array(this.slabs.length);
      victims[id] = 1;
    }
    return victims;
  }

  /** Frees the evacuated slabs once no table slot points into them. */
  release(victims: Uint8Array): void {
    for (let id = 0; id < victims.length; id++) if (victims[id] === 1 && this.slabs[id] !== undefined) this.free(id);
  }

  /** Bytes appended to the current slab's unused tail: neither live nor dead. */
  get freeTailBytes(): number {
    return this.cur < 0 ? 0 : this.slabs[this.cur]!.length - this.pos;
  }

  get slabCount(): number {
    return this.slabs.length - this.freeIds.length;
  }

  private sealCurrent(): void {
    if (this.cur < 0) return;
    const id = this.cur;
    const tail = this.slabs[id]!.length - this.pos;
    this.cur = -1;
    this.markDead(id, tail);
  }

  private newSlab(size: number): number {
    const id = this.freeIds.pop() ?? this.slabs.length;
    // A fresh ArrayBuffer: zeroed lazily by the OS, so an unfilled tail costs no RSS.
    const buffer = new ArrayBuffer(size);
    this.slabs[id] = Buffer.from(buffer);
    this.views[id] = new DataView(buffer);
    this.dead[id] = 0;
    this.slabBytes += size;
    return id;
  }

  private free(id: number): void {
    this.slabBytes -= this.slabs[id]!.length;
    this.deadBytes -= this.dead[id]!;
    this.slabs[id] = undefined;
    this.views[id] = undefined;
    this.dead[id] = 0;
    this.freeIds.push(id);
  }
}
