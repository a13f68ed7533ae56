import type { ChangeEvent } from "../feed/change-feed.ts";

/**
 * Keys whose L2 copy may be older than the origin's row: a write the origin
 * acknowledged whose write-through (or removal) did not reach L2 — L2 down,
 * cut off from this pod, slower than its bound. L2 would otherwise go on
 * answering the row the write replaced, on every pod, for up to its TTL
 * (300 s), and an L2 restarted from its own persistence brings such rows back.
 *
 * The cache tier skips L2 for these keys (reads go to the origin) and removes
 * them from L2 once it answers, then announces them on the change feed so the
 * other pods drop L1 copies read from L2 meanwhile. Bounded: past `maxKeys`
 * the keys are forgotten and the whole tier is suspect (L2 skipped for every
 * key) until L2 takes an invalidation of everything.
 */
export class L2Repair {
  private readonly keys = new Map<string, ChangeEvent>();
  private overflowed = false;

  constructor(private readonly maxKeys = 100_000) {}

  /** Notes a key whose write (event time `ts`) or delete did not reach L2. */
  note(key: string, ts: number, op: ChangeEvent["op"]): void {
    if (this.overflowed) return;
    const prev = this.keys.get(key);
    if (prev === undefined && this.keys.size >= this.maxKeys) {
      this.overflowed = true;
      this.keys.clear();
      return;
    }
    if (prev === undefined || ts >= prev.ts) this.keys.set(key, { key, ts, op });
  }

  /** Something is waiting to be repaired. */
  get pending(): boolean {
    return this.overflowed || this.keys.size > 0;
  }

  /** Too many keys to track: every L2 entry is suspect until everything is invalidated. */
  get wholeTier(): boolean {
    return this.overflowed;
  }

  /** Keys waiting (0 when the whole tier is suspect). */
  get size(): number {
    return this.keys.size;
  }

  /** L2's copy of `key` may be older than the origin's. */
  suspect(key: string): boolean {
    return this.overflowed || this.keys.has(key);
  }

  /** Up to `n` of the waiting keys, still waiting until `done`. */
  take(n: number): ChangeEvent[] {
    const out: ChangeEvent[] = [];
    for (const e of this.keys.values()) {
      if (out.length >= n) break;
      out.push(e);
    }
    return out;
  }

  /** These were removed from L2; a key noted again since `take` keeps waiting. */
  done(events: readonly ChangeEvent[]): void {
    for (const e of events) if (this.keys.get(e.key) === e) this.keys.delete(e.key);
  }

  /** L2 took an invalidation of everything: nothing older than it is reachable there. */
  doneAll(): void {
    this.overflowed = false;
    this.keys.clear();
  }
}
