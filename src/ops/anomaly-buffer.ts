/** What went wrong, as recorded for operators (`GET /admin/anomalies`). */
export type AnomalyKind = "degraded_read" | "failed_write" | "breaker" | "shed";
export const ANOMALY_KINDS: readonly AnomalyKind[] = ["degraded_read", "failed_write", "breaker", "shed"];

export interface Anomaly {
  /** Increasing sequence number. */
  readonly id: number;
  readonly kind: AnomalyKind;
  /** Shard (or other part) concerned; "" for process-wide events like shedding. */
  readonly subject: string;
  /** Stable code: `storage_timeout`, `shard_breaker_open`, `open`, `overloaded`, … */
  readonly reason: string;
  /** First and last occurrence (ms since the epoch) and how many were folded into this entry. */
  readonly firstAt: number;
  readonly lastAt: number;
  readonly count: number;
}

interface Slot {
  id: number;
  kind: AnomalyKind;
  subject: string;
  reason: string;
  key: string;
  firstAt: number;
  lastAt: number;
  count: number;
}

export interface AnomalyBufferOptions {
  /** Entries kept at most (default 10,000); the oldest is evicted to make room. */
  readonly capacity?: number;
  /** Entries older than this are dropped (default 1 h). */
  readonly ttlMs?: number;
  /** Repeats of the same (kind, subject, reason) within this window fold into one entry's count (default 1 s). */
  readonly foldMs?: number;
  readonly clock?: () => number;
}

export type EvictionReason = "capacity" | "ttl";

/**
 * A bounded, TTL'd ring of recent anomalies. Insert is O(1): a slot of a
 * preallocated ring, or a count bump when the same event repeats within
 * `foldMs` of its first occurrence (a hung shard under 10k lookups/s is one
 * entry per second, not 10k). Expired entries sit at the head of the ring (insertion order), so
 * cleanup pops them off in O(expired).
 */
export class AnomalyBuffer {
  private readonly slots: (Slot | undefined)[];
  private head = 0;
  private size = 0;
  private seq = 0;
  private readonly latest = new Map<string, Slot>();
  private readonly capacity: number;
  private readonly ttlMs: number;
  private readonly foldMs: number;
  private readonly clock: () => number;
  readonly evictions: Record<EvictionReason, number> = { capacity: 0, ttl: 0 };

  constructor(options: AnomalyBufferOptions = {}) {
    this.capacity = options.capacity ?? 10_000;
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.foldMs = options.foldMs ?? 1000;
    this.clock = options.clock ?? Date.now;
    if (!(this.capacity >= 1)) throw new Error(`anomaly buffer capacity: expected at least 1, got ${this.capacity}`);
    this.slots = new Array<Slot | undefined>(this.capacity);
  }

  get length(): number {
    return this.size;
  }

  record(kind: AnomalyKind, subject: string, reason: string): void {
    this.recordKeyed(kind, subject, reason, `${kind}\u0000${subject}\u0000${reason}`);
  }

  /** A recorder for one fixed (kind, subject, reason), its fold key built once: for events that come in floods (shed requests). */
  recorder(kind: AnomalyKind, subject: string, reason: string): () => void {
    const key = `${kind}\u0000${subject}\u0000${reason}`;
    return () => this.recordKeyed(kind, subject, reason, key);
  }

  private recordKeyed(kind: AnomalyKind, subject: string, reason: string, key: string): void {
    const now = this.clock();
    const last = this.latest.get(key);
    if (last !== undefined && now - last.firstAt <= this.foldMs) {
      last.count++;
      last.lastAt = now;
      return;
    }
    if (this.size === this.capacity) this.evictHead("capacity");
    const slot: Slot = { id: ++this.seq, kind, subject, reason, key, firstAt: now, lastAt: now, count: 1 };
    this.slots[(this.head + this.size) % this.capacity] = slot;
    this.size++;
    this.latest.set(key, slot);
  }

  /** Drops entries past their TTL; called periodically and before every query. */
  cleanup(): void {
    const cutoff = this.clock() - this.ttlMs;
    while (this.size > 0 && this.slots[this.head]!.firstAt < cutoff) this.evictHead("ttl");
  }

  /** Newest first, filtered by kind and by last occurrence at or after `since` (ms). */
  query(filter: { readonly limit?: number; readonly kind?: AnomalyKind; readonly since?: number } = {}): Anomaly[] {
    this.cleanup();
    const limit = filter.limit ?? 100;
    const out: Anomaly[] = [];
    for (let i = this.size - 1; i >= 0 && out.length < limit; i--) {
      const s = this.slots[(this.head + i) % this.capacity]!;
      if (filter.kind !== undefined && s.kind !== filter.kind) continue;
      if (filter.since !== undefined && s.lastAt < filter.since) continue;
      out.push({ id: s.id, kind: s.kind, subject: s.subject, reason: s.reason, firstAt: s.firstAt, lastAt: s.lastAt, count: s.count });
    }
    return out;
  }

  /** Occurrences (counts summed) of a kind since `since` ms, for the health score. */
  countSince(kind: AnomalyKind, since: number): number {
    let n = 0;
    for (let i = this.size - 1; i >= 0; i--) {
      const s = this.slots[(this.head + i) % this.capacity]!;
      if (s.firstAt + this.foldMs < since) break; // older entries ended before `since`
      if (s.kind === kind) n += s.count;
    }
    return n;
  }

  /** Runs `cleanup` every `everyMs` (unref'd: it never keeps the process alive); returns a stop function. */
  startCleanup(everyMs = 60_000): () => void {
    const timer = setInterval(() => this.cleanup(), everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private evictHead(reason: EvictionReason): void {
    const s = this.slots[this.head]!;
    this.slots[this.head] = undefined;
    if (this.latest.get(s.key) === s) this.latest.delete(s.key);
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    this.evictions[reason]++;
  }
}
