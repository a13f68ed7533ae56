/** The loop's recent lag: how late a periodic probe timer has fired lately. */
export interface LoopLag {
  /** Largest lag (ms) seen over roughly the last `windowMs`. */
  recentMaxMs(): number;
  /** How far behind the loop is now (ms): the last probe's lateness, or how overdue the next one already is. */
  behindMs(): number;
}

/**
 * Measures event-loop lag with one repeating timer (as Node's
 * monitorEventLoopDelay does): every `everyMs` it notes how late it ran. The
 * loop-turn signal sees only turns that read requests; this also sees the
 * turns that process shard replies and encode answers, which is where a
 * reply waits when the process is overloaded. Cost: 100 wake-ups a second,
 * unref'd (it never keeps the process alive).
 */
export class LoopLagProbe implements LoopLag {
  private timer: ReturnType<typeof setInterval> | undefined;
  private last = 0;
  private windowStart = 0;
  private current = 0;
  private previous = 0;
  private lastLag = 0;

  constructor(
    private readonly everyMs = 10,
    private readonly windowMs = 200,
  ) {}

  start(): this {
    if (this.timer !== undefined) return this;
    this.last = performance.now();
    this.windowStart = this.last;
    this.timer = setInterval(() => this.tick(performance.now()), this.everyMs);
    (this.timer as { unref?: () => void }).unref?.();
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One probe firing at `now` (exposed for tests). */
  tick(now: number): void {
    const lag = Math.max(0, now - this.last - this.everyMs);
    this.last = now;
    this.lastLag = lag;
    if (now - this.windowStart >= this.windowMs) {
      this.previous = this.current;
      this.current = 0;
      this.windowStart = now;
    }
    if (lag > this.current) this.current = lag;
  }

  recentMaxMs(): number {
    return Math.max(this.current, this.previous, this.overdue());
  }

  behindMs(): number {
    return Math.max(this.lastLag, this.overdue());
  }

  /** A stall still in progress shows as the time since the probe last ran, beyond its period. */
  private overdue(): number {
    return this.timer === undefined ? 0 : Math.max(0, performance.now() - this.last - this.everyMs);
  }
}
