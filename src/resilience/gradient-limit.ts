/**
 * Adaptive concurrency limit after Netflix's Gradient2 (concurrency-limits):
 * compares the recent service time (average over a window of samples) with a
 * baseline. While recent latency stays within `tolerance` times the baseline
 * the limit grows by a small queue allowance; above it (the process is
 * queueing) the limit shrinks in proportion. No latency target to hand-tune:
 * the pod finds the concurrency where it stops queueing internally and holds
 * it.
 *
 * The baseline is the service time without a queue, as Envoy's adaptive
 * concurrency and TCP Vegas use a minimum RTT, not Gradient2's long moving
 * average of all samples. A long average drifts up under sustained queueing:
 * when the process is CPU-bound, service time grows with concurrency, the
 * average follows it, and the limit grows by its allowance window after
 * window (a server on 3 Redis shards at 3x its capacity went from a limit of
 * 35 to 132 in 7 s, admitted p99 130 ms, shard reads timing out; a model of a
 * CPU-bound server reaches the maximum of 1000). So the baseline learns, in
 * both directions, only from windows run at low concurrency (at most
 * `floorInFlight` in flight), where there is no queue to measure; a busier
 * window can only lower it (it proves the floor is lower). If the floor
 * really rises (storage got slower), recent latency stays above it, the limit
 * shrinks to where windows run at low concurrency, and those teach it the
 * new floor. When they never come (offered concurrency stays high), the
 * limit can settle where recent latency sits between the old floor and
 * `tolerance` times it; so, as Envoy does, every `floorProbeEveryMs` the
 * limit is held at `floorInFlight` until one window runs at that
 * concurrency, and that window's service time becomes the floor. The probe
 * lasts about one window (50 requests); requests beyond the held limit wait
 * in the admission queue or are shed meanwhile. The first probe runs at
 * start, as Envoy measures its minimum RTT before it adapts: a server that
 * starts under overload otherwise took its first windows, queueing, for the
 * floor, and ran at 2–3 times the concurrency it needed until the next
 * probe 30 s later (3 Redis shards at 3x: limit 29, a thousand shard reads
 * timed out in 8 s). With probes off (`floorProbeEveryMs` 0) the floor
 * starts as the plain average of the first 10 windows.
 */
export interface GradientLimitOptions {
  /**
   * Limit to start from (default 20, as Netflix's Gradient2). It is also the limit an
   * overload meets after a quiet spell: while the application keeps concurrency far below
   * it, nothing is learned and it stays put.
   */
  readonly initial?: number;
  /** Lowest the limit goes (default twice `queueAllowance`: where a limit held at half by queueing settles). */
  readonly min?: number;
  readonly max?: number;
  /** Recent latency may reach this multiple of the long average before the limit shrinks (default 1.5). */
  readonly tolerance?: number;
  /** Weight of a new window in the limit (default 0.2). */
  readonly smoothing?: number;
  /** Samples per window (default 50). */
  readonly windowSamples?: number;
  /** Windows the baseline's moving average spans (default 60). */
  readonly longWindows?: number;
  /** A window with at most this many in flight measures the no-queue service time (default 2, or `min` if lower). */
  readonly floorInFlight?: number;
  /** How often (ms, by the clock `sample` is given) the floor is measured afresh at `floorInFlight` (default 30 s; 0: never). */
  readonly floorProbeEveryMs?: number;
  /**
   * Longest a floor probe holds the limit (ms, default 1000); past it the probe is given up, the floor unchanged.
   * Requests that take long (pushes to a hung shard, 21 s each) held the probe's two slots, its window of 50
   * never completed, and every other request was refused for as long as they kept coming.
   */
  readonly floorProbeMaxMs?: number;
  /**
   * Gradient2's queue allowance: requests in flight the limit adds each window beyond what the
   * latency gradient keeps (at least this, or the limit's square root when larger; default 4, as
   * Netflix's). The latency gradient is floored at 0.5 (it never aims below half the limit), so under
   * sustained queueing the limit settles near twice this: 8 by default, 4 at 1 (lower latency for admitted requests and
   * refusals, fewer lookups answered where clients resend a refusal at once; README, Failure behaviour).
   */
  readonly queueAllowance?: number;
}

/**
 * Default concurrency of the windows that measure the floor. Not the limit's
 * minimum (8): where a few requests already fill the core (100-entity lookups
 * on 3 Redis shards beside the server: 4 closed-loop connections reach
 * capacity), 8 in flight is a queue for the CPU, and a probe there under
 * overload took that queue's latency for the floor; the limit then grew to
 * where latency was 1.5 times it (12-06: from 11 to 17–20 after the first
 * probe 30 s into a sustained 3x overload, admitted p99 22 -> 70 ms).
 */
const FLOOR_IN_FLIGHT = 2;

export class GradientLimit {
  private estimate: number;
  private readonly min: number;
  private readonly max: number;
  private readonly tolerance: number;
  private readonly smoothing: number;
  private readonly windowSamples: number;
  private readonly longAlpha: number;
  private readonly floorInFlight: number;
  private readonly queueAllowance: number;
  /** Service time without a queue (ms): the baseline. */
  private floorRtt = 0;
  private readonly probeEvery: number;
  /** When the next floor probe starts (NaN until a sample brings a clock). */
  private nextProbeAt = Number.NaN;
  private probing = false;
  /** When the running probe started (NaN until a clock reading comes). */
  private probeStartedAt = Number.NaN;
  private readonly probeMaxMs: number;
  private windows = 0;
  private sum = 0;
  private count = 0;
  private maxInFlight = 0;
  /** The limit callers compare against (an integer). */
  limit: number;

  constructor(options: GradientLimitOptions = {}) {
    this.queueAllowance = options.queueAllowance ?? 4;
    this.min = options.min ?? 2 * this.queueAllowance;
    this.max = options.max ?? 1000;
    this.estimate = Math.min(this.max, Math.max(this.min, options.initial ?? 20));
    this.limit = Math.floor(this.estimate);
    this.tolerance = options.tolerance ?? 1.5;
    this.smoothing = options.smoothing ?? 0.2;
    this.windowSamples = options.windowSamples ?? 50;
    this.longAlpha = 2 / ((options.longWindows ?? 60) + 1);
    this.floorInFlight = options.floorInFlight ?? Math.min(this.min, FLOOR_IN_FLIGHT);
    this.probeEvery = options.floorProbeEveryMs ?? 30_000;
    this.probeMaxMs = options.floorProbeMaxMs ?? 1000;
    if (this.probeEvery > 0) this.startProbe(Number.NaN);
  }

  /** Is the limit held low to measure the floor? */
  get probingFloor(): boolean {
    return this.probing;
  }

  /** The service time without a queue (ms) the limit compares against; 0 before the first window. */
  get baselineMs(): number {
    return this.floorRtt;
  }

  /**
   * One completed request: its service time and how many were in flight.
   * `nowMs` (the admission clock) times the floor probes; without it there are none.
   */
  sample(rttMs: number, inFlight: number, nowMs = Number.NaN): void {
    if (this.probing) this.expireProbe(nowMs);
    if (!this.probing && nowMs >= this.nextProbeAt) this.startProbe(nowMs);
    else if (Number.isNaN(this.nextProbeAt) && this.probeEvery > 0) this.nextProbeAt = nowMs + this.probeEvery;
    this.sum += rttMs;
    this.count++;
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight;
    if (this.count >= this.windowSamples) this.endWindow(nowMs);
  }

  /**
   * Gives up a floor probe that has held the limit longer than
   * `floorProbeMaxMs` (admission calls it as requests arrive, while probing):
   * the limit goes back to its estimate and the next probe comes in
   * `floorProbeEveryMs`.
   */
  expireProbe(nowMs: number): void {
    if (!this.probing || Number.isNaN(nowMs)) return;
    if (Number.isNaN(this.probeStartedAt)) this.probeStartedAt = nowMs;
    else if (nowMs - this.probeStartedAt > this.probeMaxMs) {
      this.probing = false;
      this.nextProbeAt = nowMs + this.probeEvery;
      this.limit = Math.floor(this.estimate);
      this.resetWindow();
    }
  }

  private startProbe(nowMs: number): void {
    this.probing = true;
    this.probeStartedAt = nowMs;
    this.limit = Math.min(this.limit, this.floorInFlight);
    this.resetWindow();
  }

  private resetWindow(): void {
    this.sum = 0;
    this.count = 0;
    this.maxInFlight = 0;
  }

  private endWindow(nowMs: number): void {
    const shortRtt = this.sum / this.count;
    const inFlight = this.maxInFlight;
    this.resetWindow();
    if (this.probing) {
      // Requests admitted before the probe are still finishing: wait for a window run wholly at the probe's concurrency.
      if (inFlight > this.floorInFlight) return;
      this.floorRtt = shortRtt;
      this.probing = false;
      this.nextProbeAt = nowMs + this.probeEvery;
      this.limit = Math.floor(this.estimate);
      return;
    }
    // Without probes, warm-up: a plain average of the first windows, whatever their concurrency (the floor may start high; see
    // above). With probes, windows are counted only once the start-up probe has measured the floor.
    this.windows++;
    if (this.probeEvery === 0 && this.windows <= 10) this.floorRtt += (shortRtt - this.floorRtt) / this.windows;
    else if (inFlight <= this.floorInFlight) this.floorRtt += this.longAlpha * (shortRtt - this.floorRtt);
    else if (shortRtt < this.floorRtt) this.floorRtt = shortRtt;
    // Far below the limit the app, not the pod, limits concurrency: nothing to learn.
    if (inFlight < this.estimate / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (this.tolerance * this.floorRtt) / Math.max(shortRtt, 1e-6)));
    const queueAllowance = Math.max(this.queueAllowance, Math.sqrt(this.estimate));
    const next = this.estimate * gradient + queueAllowance;
    this.estimate = Math.min(this.max, Math.max(this.min, this.estimate * (1 - this.smoothing) + next * this.smoothing));
    this.limit = Math.floor(this.estimate);
  }
}
