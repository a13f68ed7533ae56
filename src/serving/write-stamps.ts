/**
 * Event times for pushed rows that carry none ("server time").
 *
 * Stored rows are last-write-wins on a strictly newer event time, and the
 * store keeps milliseconds: two pushes of one entity within the same
 * millisecond, both stamped with the clock, would tie and the second (the
 * client's correction) would be ignored. This clock hands a key a stamp
 * strictly after the last one it handed that key, so pushes through one
 * process without event times take effect in the order they arrive. A stamp
 * runs ahead of the wall clock only by as many pushes of that key as shared a
 * millisecond, and never by more than `maxLeadMs`: a key pushed faster than
 * that for long gets the same stamp again, and those pushes are answered as
 * ignored rather than moving its event time ever further into the future.
 *
 * Memory: only keys whose last stamp is not yet in the past are remembered
 * (forgotten all at once when the clock passes the newest stamp, swept when
 * the map grows), so it holds at most the keys pushed in the last
 * `maxLeadMs`, and usually those of the current millisecond.
 */
/** Remembered keys beyond which stamps in the past are swept out. */
const SWEEP_FLOOR = 65_536;

export class WriteStamps {
  private readonly last = new Map<string, number>();
  /** The newest stamp handed out: once the clock is past it, no remembered stamp matters. */
  private newest = Number.NEGATIVE_INFINITY;
  private sweepAt = SWEEP_FLOOR;

  constructor(private readonly maxLeadMs = 1_000) {}

  /** A stamp for `key` at wall time `now` (ms): `now`, or just after the key's last stamp. */
  stamp(key: string, now: number): number {
    this.forgetPast(now);
    const prev = this.last.get(key);
    const ts = prev === undefined || prev < now ? now : Math.min(prev + 1, now + this.maxLeadMs);
    this.remember(key, ts, now);
    return ts;
  }

  /**
   * Notes an event time a client gave `key`: a later stamp for it goes past
   * that, so a push without an event time after one stamped "now" by its
   * client still takes effect. Only times not in the past matter.
   */
  observe(key: string, ts: number, now: number): void {
    if (ts < now) return;
    this.forgetPast(now);
    const prev = this.last.get(key);
    if (prev === undefined || ts > prev) this.remember(key, ts, now);
  }

  /** Keys remembered (for tests and the memory bound). */
  get size(): number {
    return this.last.size;
  }

  private forgetPast(now: number): void {
    if (now > this.newest && this.last.size > 0) this.last.clear();
  }

  private remember(key: string, ts: number, now: number): void {
    this.last.set(key, ts);
    if (ts > this.newest) this.newest = ts;
    if (this.last.size > this.sweepAt) this.sweep(now);
  }

  /** Drops stamps already in the past; what is left was handed out within the last maxLeadMs. */
  private sweep(now: number): void {
    for (const [key, ts] of this.last) if (ts < now) this.last.delete(key);
    this.sweepAt = Math.max(SWEEP_FLOOR, this.last.size * 2);
  }
}
