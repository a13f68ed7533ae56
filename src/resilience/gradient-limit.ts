/**
 * Adaptive concurrency limit after Netflix's Gradient2 (concurrency-limits):
 * compares the recent service time (average over a window of samples) with a
 * slow moving average of it. While they agree the limit grows by a small
 * queue allowance; when recent latency rises above `tolerance` times the long
 * average (the process is queueing), the limit shrinks in proportion. No
 * latency target to hand-tune: the pod finds the concurrency where it stops
 * queueing internally and holds it.
 */
export interface GradientLimitOptions {
  readonly initial?: number;
  readonly min?: number;
  readonly max?: number;
  /** Recent latency may reach this multiple of the long average before the limit shrinks (default 1.5). */
  readonly tolerance?: number;
  /** Weight of a new window in the limit (default 0.2). */
  readonly smoothing?: number;
  /** Samples per window (default 50). */
  readonly windowSamples?: number;
  /** Windows the long average spans (default 60). */
  readonly longWindows?: number;
}

export class GradientLimit {
  private estimate: number;
  private readonly min: number;
  private readonly max: number;
  private readonly tolerance: number;
  private readonly smoothing: number;
  private readonly windowSamples: number;
  private readonly longAlpha: number;
  private longRtt = 0;
  private windows = 0;
  private sum = 0;
  private count = 0;
  private maxInFlight = 0;
  /** The limit callers compare against (an integer). */
  limit: number;

  constructor(options: GradientLimitOptions = {}) {
    this.min = options.min ?? 8;
    this.max = options.max ?? 1000;
    this.estimate = Math.min(this.max, Math.max(this.min, options.initial ?? 64));
    this.limit = Math.floor(this.estimate);
    this.tolerance = options.tolerance ?? 1.5;
    this.smoothing = options.smoothing ?? 0.2;
    this.windowSamples = options.windowSamples ?? 50;
    this.longAlpha = 2 / ((options.longWindows ?? 60) + 1);
  }

  /** The long-run average service time (ms); 0 before the first window. */
  get baselineMs(): number {
    return this.longRtt;
  }

  /** One completed request: its service time and how many were in flight when it started. */
  sample(rttMs: number, inFlight: number): void {
    this.sum += rttMs;
    this.count++;
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight;
    if (this.count >= this.windowSamples) this.endWindow();
  }

  private endWindow(): void {
    const shortRtt = this.sum / this.count;
    const inFlight = this.maxInFlight;
    this.sum = 0;
    this.count = 0;
    this.maxInFlight = 0;
    // Warm-up: a plain average of the first windows, then an exponential one.
    this.windows++;
    this.longRtt = this.windows <= 10 ? this.longRtt + (shortRtt - this.longRtt) / this.windows : this.longRtt + this.longAlpha * (shortRtt - this.longRtt);
    // After a long overload the baseline may have drifted up: pull it back towards the present.
    if (this.longRtt > 2 * shortRtt) this.longRtt *= 0.95;
    // Far below the limit the app, not the pod, limits concurrency: nothing to learn.
    if (inFlight < this.estimate / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (this.tolerance * this.longRtt) / Math.max(shortRtt, 1e-6)));
    const queueAllowance = Math.max(4, Math.sqrt(this.estimate));
    const next = this.estimate * gradient + queueAllowance;
    this.estimate = Math.min(this.max, Math.max(this.min, this.estimate * (1 - this.smoothing) + next * this.smoothing));
    this.limit = Math.floor(this.estimate);
  }
}
