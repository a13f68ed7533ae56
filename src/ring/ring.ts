import { hash64, hash64Bytes } from "./hash64.ts";

/** A physical node on the ring with its relative weight (1 = the default share). */
export interface RingMember {
  readonly id: string;
  readonly weight: number;
}

export interface RingOptions {
  /** Virtual nodes per unit of weight; more vnodes = smoother balance, bigger table. */
  readonly vnodesPerNode?: number;
}

/**
 * Consistent-hash ring with virtual nodes. Positions live in one sorted
 * Float64Array searched by binary search; owners are indexes into `members`,
 * so `owner()` allocates nothing. Changing membership rebuilds the table
 * (a rare admin action) and returns a new ring: readers holding the old one
 * keep a consistent view, which is what a migration needs.
 */
export class HashRing {
  readonly members: readonly RingMember[];
  readonly vnodesPerNode: number;
  private readonly positions: Float64Array;
  private readonly ownerIndex: Uint16Array;
  /**
   * The hash space (53 bits) cut into 2^bucketBits equal buckets; bucketStart[b]
   * is the first position at or after bucket b's start. A hash's slot lies
   * between its bucket's start and the next one's, almost always within a
   * position or two: a lookup costs an index read and a short search instead
   * of a binary search over every position (~10 unpredictable branches for
   * 4 nodes x 160 vnodes), for each key a lookup routes.
   */
  private readonly bucketStart: Int32Array;
  private readonly bucketDivisor: number;

  constructor(members: readonly RingMember[], options: RingOptions = {}) {
    this.vnodesPerNode = options.vnodesPerNode ?? 160;
    if (!Number.isInteger(this.vnodesPerNode) || this.vnodesPerNode < 1) {
      throw new Error(`ring.vnodesPerNode: expected a positive integer, got ${this.vnodesPerNode}`);
    }
    const ids = new Set<string>();
    for (const m of members) {
      if (ids.has(m.id)) throw new Error(`ring: duplicate node id "${m.id}"`);
      if (!(m.weight > 0) || !Number.isFinite(m.weight)) throw new Error(`ring: node "${m.id}" weight must be > 0, got ${m.weight}`);
      ids.add(m.id);
    }
    if (members.length > 65535) throw new Error("ring: at most 65535 nodes");
    this.members = [...members];
    const points: { pos: number; owner: number }[] = [];
    this.members.forEach((m, owner) => {
      const count = Math.max(1, Math.round(this.vnodesPerNode * m.weight));
      for (let v = 0; v < count; v++) points.push({ pos: hash64(`${m.id}#${v}`), owner });
    });
    // Ties (astronomically rare) are broken by node id so every process agrees.
    points.sort((a, b) => a.pos - b.pos || compareIds(this.members[a.owner]!.id, this.members[b.owner]!.id));
    this.positions = new Float64Array(points.length);
    this.ownerIndex = new Uint16Array(points.length);
    points.forEach((p, i) => {
      this.positions[i] = p.pos;
      this.ownerIndex[i] = p.owner;
    });
    let bucketBits = 10;
    while (bucketBits < 16 && 2 ** bucketBits < points.length) bucketBits++;
    const buckets = 2 ** bucketBits;
    this.bucketDivisor = 2 ** (53 - bucketBits);
    this.bucketStart = new Int32Array(buckets + 1);
    for (let b = 0, i = 0; b <= buckets; b++) {
      const from = b * this.bucketDivisor;
      while (i < points.length && this.positions[i]! < from) i++;
      this.bucketStart[b] = i;
    }
  }

  get size(): number {
    return this.members.length;
  }

  /** Index into `members` of the node owning `key` (from `from` on); -1 on an empty ring. */
  ownerIndexOf(key: string, from = 0): number {
    const n = this.positions.length;
    if (n === 0) return -1;
    return this.ownerIndex[this.slotOf(hash64(key, from))]!;
  }

  /** `ownerIndexOf` for a key held as ASCII bytes, routed by `b[from..end)`. */
  ownerIndexOfBytes(b: Uint8Array, from: number, end: number): number {
    if (this.positions.length === 0) return -1;
    return this.ownerIndex[this.slotOf(hash64Bytes(b, from, end))]!;
  }

  /** The node owning `key`, or undefined on an empty ring. */
  owner(key: string): RingMember | undefined {
    const i = this.ownerIndexOf(key);
    return i < 0 ? undefined : this.members[i];
  }

  /** Up to `n` distinct physical nodes for `key`, in ring order (first = owner). */
  owners(key: string, n: number): RingMember[] {
    const out: RingMember[] = [];
    const total = this.positions.length;
    if (total === 0 || n <= 0) return out;
    const want = Math.min(n, this.members.length);
    const seen = new Uint8Array(this.members.length);
    for (let i = this.slotOf(hash64(key)), steps = 0; out.length < want && steps < total; i = (i + 1) % total, steps++) {
      const o = this.ownerIndex[i]!;
      if (seen[o] === 0) {
        seen[o] = 1;
        out.push(this.members[o]!);
      }
    }
    return out;
  }

  /** A new ring with `member` added (same vnode setting). */
  withMember(member: RingMember): HashRing {
    return new HashRing([...this.members, member], { vnodesPerNode: this.vnodesPerNode });
  }

  /** A new ring without the node `id`. */
  withoutMember(id: string): HashRing {
    if (!this.members.some((m) => m.id === id)) throw new Error(`ring: no node "${id}"`);
    return new HashRing(
      this.members.filter((m) => m.id !== id),
      { vnodesPerNode: this.vnodesPerNode },
    );
  }

  /** Fraction of the hash space each node owns (sums to 1), for ops reports. */
  shares(): Map<string, number> {
    const out = new Map<string, number>(this.members.map((m) => [m.id, 0]));
    const n = this.positions.length;
    if (n === 0) return out;
    const space = 2 ** 53;
    for (let i = 0; i < n; i++) {
      // Slot i owns the arc (positions[i-1], positions[i]].
      const prev = i === 0 ? this.positions[n - 1]! - space : this.positions[i - 1]!;
      const id = this.members[this.ownerIndex[i]!]!.id;
      out.set(id, (out.get(id) ?? 0) + (this.positions[i]! - prev) / space);
    }
    return out;
  }

  /** First slot whose position is >= h, wrapping to 0. */
  /** The first position at or after `h` (a 53-bit hash), wrapping to 0 past the last. */
  private slotOf(h: number): number {
    const pos = this.positions;
    // Every position before the bucket's start is below h; the next bucket's first is above it.
    const b = Math.floor(h / this.bucketDivisor);
    let lo = this.bucketStart[b]!;
    let hi = this.bucketStart[b + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pos[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === pos.length ? 0 : lo;
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
