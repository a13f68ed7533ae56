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
 *
 * Views are noted the same way when their invalidation (a registry reload's)
 * could not bump L2's generation: the view's keys are skipped until it does.
 */
export class L2Repair {
  private readonly keys = new Map<string, ChangeEvent>();
  private readonly views = new Set<string>();
  private overflowed = false;

  constructor(private readonly maxKeys = 100_000) {}

  /** Notes a key whose write (event time `ts`) or delete did not reach L2. */
  note(key: string, ts: number, op: ChangeEvent["op"]): void {
    if (this.overflowed) return;
    const prev = this.keys.get(key);
    if (prev === undefined && this.keys.size >= this.maxKeys) {
      this.noteAll();
      return;
    }
    if (prev === undefined || ts >= prev.ts) this.keys.set(key, { key, ts, op });
  }

  /** Notes a view whose invalidation L2 did not take. */
  noteView(view: string): void {
    if (!this.overflowed) this.views.add(view);
  }

  /** Notes that nothing in L2 may be read until it takes an invalidation of everything. */
  noteAll(): void {
    this.overflowed = true;
    this.keys.clear();
    this.views.clear();
  }

  /** Something is waiting to be repaired. */
  get pending(): boolean {
    return this.overflowed || this.keys.size > 0 || this.views.size > 0;
  }

  /** Too many keys to track: every L2 entry is suspect until everything is invalidated. */
  get wholeTier(): boolean {
    return this.overflowed;
  }

  /** Keys and views waiting (0 when the whole tier is suspect). */
  get size(): number {
    return this.keys.size + this.views.size;
  }

  /** L2's copy of `key` may be older than the origin's. */
  suspect(key: string): boolean {
    if (this.overflowed || this.keys.has(key)) return true;
    if (this.views.size === 0) return false;
    const at = key.indexOf("@");
    return this.views.has(at < 0 ? key : key.slice(0, at));
  }

  /** Views waiting for their invalidation. */
  waitingViews(): string[] {
    return [...this.views];
  }

  /** L2 took the view's invalidation. */
  viewDone(view: string): void {
    this.views.delete(view);
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
    this.views.clear();
  }
}
