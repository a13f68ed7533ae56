/** The loop's recent lag: how late a periodic probe timer has fired lately. */
export interface LoopLag {
  /** Largest lag (ms) seen over roughly the last `windowMs`. */
  recentMaxMs(): number;
  /**
   * How far behind the loop is now (ms), as a request read now has waited:
   * how overdue the next probe already is, or the last probe's lateness while
   * it still applies (until the loop has polled its sockets once since).
   */
  behindMs(): number;
}

/** Runs `fn` in the loop's next check phase (setImmediate on the real loop). */
export type Defer = (fn: () => void) => void;

const realDefer: Defer = (fn) => {
  setImmediate(fn);
};

/** A probe late by less than this is timer jitter, not lag (ms). */
const JITTER_MS = 1;

/**
 * Measures event-loop lag with one repeating timer (as Node's
 * monitorEventLoopDelay does): every `everyMs` it notes how late it ran. The
 * loop-turn signal sees only turns that read requests; this also sees the
 * turns that process shard replies and encode answers, which is where a
 * reply waits when the process is overloaded. Cost: 100 wake-ups a second,
 * unref'd (it never keeps the process alive).
 *
 * When a late probe's lateness applies. Bun's loop turns as poll (socket
 * callbacks) → timers → immediates. After a long turn of reply handling the
 * probe fires late in the timer phase, and the requests that arrived
 * meanwhile are read in the very next poll: they waited about that
 * lateness, though the probe has just run. But a request read later — after
 * the loop went idle — waited nothing, however late the last probe was (a
 * closed-loop client's next request after a slow answer, or the first
 * request after an overload ends, were refused for a lag already cleared).
 * So the lateness applies only until the loop has polled once since the
 * probe: an immediate queued from an immediate runs after the next poll,
 * which is non-blocking while it is pending. After that, only how overdue
 * the next probe is counts.
 */
export class LoopLagProbe implements LoopLag {
  private timer: ReturnType<typeof setInterval> | undefined;
  private last = 0;
  private windowStart = 0;
  private current = 0;
  private previous = 0;
  private lastLag = 0;
  /** Generation of the late probe whose lateness still applies (0: none). */
  private fresh = 0;
  private generation = 0;

  constructor(
    private readonly everyMs = 10,
    private readonly windowMs = 200,
    private readonly defer: Defer = realDefer,
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
    if (lag > JITTER_MS) this.holdUntilPolled();
    else this.fresh = 0;
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
    return this.fresh !== 0 ? Math.max(this.lastLag, this.overdue()) : this.overdue();
  }

  /** Keeps the lateness just measured until the loop has polled once (two check phases from now). */
  private holdUntilPolled(): void {
    const g = ++this.generation;
    this.fresh = g;
    this.defer(() =>
      this.defer(() => {
        if (this.fresh === g) this.fresh = 0;
      }),
    );
  }

  /** A stall still in progress shows as the time since the probe last ran, beyond its period. */
  private overdue(): number {
    return this.timer === undefined ? 0 : Math.max(0, performance.now() - this.last - this.everyMs);
  }
}
