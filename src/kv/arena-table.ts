import type { SlabStore } from "./arena-slabs.ts";

/**
 * The arena node's index: an open-addressing (linear probing) hash table in
 * one Uint32Array, three words per slot so a probe touches one cache line:
 *
 *   [hash of the key bytes][ref: 0 empty, TOMBSTONE deleted, else slab id + 1][record offset]
 *
 * The stored hash rejects almost every non-matching slot without reading the
 * slab, and lets a rehash move slots without re-reading keys. Deletes leave
 * tombstones so probe chains stay intact; a rehash (growth, or in place when
 * tombstones pile up) drops them.
 */

const STRIDE = 3;
/** firstProbe: the key is not in the table. */
export const ABSENT = -1;
/** firstProbe: the first slot does not decide; `find` probes on. */
export const PROBE_ON = -2;
const EMPTY = 0;
const TOMBSTONE = 0xffffffff;
/** Live + tombstone slots may fill this share of the table before a rehash. */
const MAX_LOAD = 0.7;
const MIN_CAPACITY = 1024;

export class ArenaTable {
  private t: Uint32Array;
  private mask: number;
  private limit: number;
  private tombstones = 0;
  /** Live keys. */
  live = 0;

  constructor(
    private readonly slabs: SlabStore,
    capacity = MIN_CAPACITY,
  ) {
    this.t = new Uint32Array(capacity * STRIDE);
    this.mask = capacity - 1;
    this.limit = Math.floor(capacity * MAX_LOAD);
  }

  get capacity(): number {
    return this.mask + 1;
  }

  get byteLength(): number {
    return this.t.byteLength;
  }

  /** The slot holding the key `key[at..at + len)` whose hash is `h`, or -1. */
  find(key: Uint8Array, at: number, len: number, h: number): number {
    const t = this.t;
    const mask = this.mask;
    let i = h & mask;
    for (let n = 0; n <= mask; n++) {
      const b = i * STRIDE;
      const ref = t[b + 1]!;
      if (ref === EMPTY) return -1;
      if (ref !== TOMBSTONE && t[b] === h && this.slabs.keyEquals(ref - 1, t[b + 2]!, key, at, len)) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /**
   * The first probe of a key whose hash is `h`, without reading the slab:
   * its slot when that slot holds a live key with the same hash (a candidate
   * to confirm with the slab's keyEquals), ABSENT when the slot is empty (the
   * key is not in the table), PROBE_ON otherwise (a collision or tombstone:
   * `find` decides). Cheap and branch-light, so a batch can issue these loads
   * back to back and let their cache misses overlap.
   */
  firstProbe(h: number): number {
    const i = h & this.mask;
    const b = i * STRIDE;
    const t = this.t;
    const ref = t[b + 1]!;
    if (ref === EMPTY) return ABSENT;
    return ref !== TOMBSTONE && t[b] === h ? i : PROBE_ON;
  }

  /** Adds a key known to be absent, at (slab, offset); may rehash, so slot numbers change. */
  insert(h: number, slab: number, offset: number): void {
    if (this.live + this.tombstones + 1 > this.limit) this.rehash();
    const t = this.t;
    const mask = this.mask;
    let i = h & mask;
    // The load limit keeps at least 30% of slots free, so this finds one.
    for (let n = 0; n <= mask; n++) {
      const ref = t[i * STRIDE + 1]!;
      if (ref === EMPTY || ref === TOMBSTONE) {
        if (ref === TOMBSTONE) this.tombstones--;
        this.write(i, h, slab, offset);
        this.live++;
        return;
      }
      i = (i + 1) & mask;
    }
    throw new Error(`arena table full at capacity ${this.capacity}: load accounting is broken`);
  }

  /** Slab id of a live slot, or -1 for an empty or deleted one. */
  slabAt(i: number): number {
    const ref = this.t[i * STRIDE + 1]!;
    return ref === EMPTY || ref === TOMBSTONE ? -1 : ref - 1;
  }

  offsetAt(i: number): number {
    return this.t[i * STRIDE + 2]!;
  }

  /** Points a live slot at the key's relocated record. */
  relocate(i: number, slab: number, offset: number): void {
    this.t[i * STRIDE + 1] = slab + 1;
    this.t[i * STRIDE + 2] = offset;
  }

  remove(i: number): void {
    const t = this.t;
    // If the next slot is empty no probe chain runs through this one, so it can
    // become empty rather than a tombstone.
    const next = ((i + 1) & this.mask) * STRIDE;
    if (t[next + 1] === EMPTY) {
      t[i * STRIDE + 1] = EMPTY;
      // Tombstones just before it now end in an empty slot too: clear them.
      let j = (i - 1) & this.mask;
      for (let n = 0; n < this.mask && t[j * STRIDE + 1] === TOMBSTONE; n++) {
        t[j * STRIDE + 1] = EMPTY;
        this.tombstones--;
        j = (j - 1) & this.mask;
      }
    } else {
      t[i * STRIDE + 1] = TOMBSTONE;
      this.tombstones++;
    }
    this.live--;
  }

  /**
   * Rebuilds the table from stored hashes, dropping tombstones. Doubles when
   * live keys fill over 60% of the load limit (so a full table doubles exactly
   * once); otherwise tombstones were the problem and the size stays.
   */
  private rehash(): void {
    let capacity = this.capacity;
    while (this.live + 1 > capacity * MAX_LOAD * 0.6) capacity *= 2;
    const old = this.t;
    this.t = new Uint32Array(capacity * STRIDE);
    this.mask = capacity - 1;
    this.limit = Math.floor(capacity * MAX_LOAD);
    this.tombstones = 0;
    const t = this.t;
    const mask = this.mask;
    for (let b = 0; b < old.length; b += STRIDE) {
      const ref = old[b + 1]!;
      if (ref === EMPTY || ref === TOMBSTONE) continue;
      const h = old[b]!;
      let i = h & mask;
      // The new table is under half full, so an empty slot is near.
      for (let n = 0; n < mask && t[i * STRIDE + 1] !== EMPTY; n++) i = (i + 1) & mask;
      this.write(i, h, ref - 1, old[b + 2]!);
    }
  }

  private write(i: number, h: number, slab: number, offset: number): void {
    const b = i * STRIDE;
    this.t[b] = h;
    this.t[b + 1] = slab + 1;
    this.t[b + 2] = offset;
  }
}

/**
 * murmur3 (32-bit) over `bytes[at..at + len)`, returned unsigned so it compares
 * equal to the value read back from a Uint32Array.
 */
export function hashBytes(bytes: Uint8Array, at: number, len: number): number {
  let h = 0x9747b28c;
  let i = at;
  const whole = at + (len & ~3);
  for (; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = len & 3;
  if (rest > 0) {
    let k = bytes[i]!;
    if (rest > 1) k |= bytes[i + 1]! << 8;
    if (rest > 2) k |= bytes[i + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  return finish(h, len);
}

/**
 * For an all-ASCII `key`: writes its bytes to `out` and returns the same hash
 * as `hashBytes` in one pass (~30% cheaper per read than copy, then hash).
 * Returns -1 at the first non-ASCII char; the caller then encodes properly.
 * `out` must hold `key.length` bytes.
 */
export function hashAsciiInto(key: string, out: Uint8Array): number {
  const n = key.length;
  let h = 0x9747b28c;
  let i = 0;
  const whole = n & ~3;
  for (; i < whole; i += 4) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    const c2 = key.charCodeAt(i + 2);
    const c3 = key.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return -1;
    out[i] = c0;
    out[i + 1] = c1;
    out[i + 2] = c2;
    out[i + 3] = c3;
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = n & 3;
  if (rest > 0) {
    let k = 0;
    for (let j = rest - 1; j >= 0; j--) {
      const c = key.charCodeAt(i + j);
      if (c >= 0x80) return -1;
      out[i + j] = c;
      k = (k << 8) | c;
    }
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  return finish(h, n);
}

/** murmur3's final avalanche, shared by both hash entry points so they agree bit for bit. */
function finish(h: number, len: number): number {
  let x = h ^ len;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
