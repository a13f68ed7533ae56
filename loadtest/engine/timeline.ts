/**
 * Where in a run its slow requests were. Per window of intended send time:
 * how many requests, the slowest, and how many took longer than each of a few
 * bounds. A tail set by stalls (a collection, a descheduled process, a burst
 * of background work) puts most slow requests in a few windows; a load the
 * server cannot keep up with spreads them over all. The percentiles cannot
 * tell these apart; the windows can. Bounded memory: a few bytes per window.
 */
export const TIMELINE_WINDOW_MS = 100;
/** Latency bounds (ms) counted per window. */
export const TIMELINE_BOUNDS_MS = [1, 2, 5, 10, 20, 50] as const;

export interface TimelineSummary {
  readonly windowMs: number;
  /** Requests per window, by intended send time from the start of measurement. */
  readonly count: readonly number[];
  /** The slowest latency (ms) per window; 0 for an empty window. */
  readonly maxMs: readonly number[];
  /** For each bound, the requests per window that took longer. */
  readonly over: readonly { readonly boundMs: number; readonly count: readonly number[] }[];
}

export class Timeline {
  /**
   * `lead`: windows before the first reported one. A run records its warm-up
   * through the same code as its measured requests (run-load.ts), into
   * windows counted from before it; `summary` leaves those out.
   */
  constructor(private readonly lead = 0) {}

  private count = new Int32Array(64);
  private max = new Float64Array(64);
  private over: Int32Array[] = TIMELINE_BOUNDS_MS.map(() => new Int32Array(64));
  private windows = 0;

  /** A request due `atMs` after the timeline's origin (`lead` windows before the first reported) took `latencyMs`. */
  record(atMs: number, latencyMs: number): void {
    // Never negative from run-load.ts; a caller's stray value lands in window 0, which is not reported.
    const w = atMs > 0 ? Math.floor(atMs / TIMELINE_WINDOW_MS) : 0;
    if (w >= this.count.length) this.grow(w + 1);
    if (w >= this.windows) this.windows = w + 1;
    this.count[w]!++;
    if (latencyMs > this.max[w]!) this.max[w] = latencyMs;
    for (let b = 0; b < TIMELINE_BOUNDS_MS.length && latencyMs > TIMELINE_BOUNDS_MS[b]!; b++) this.over[b]![w]!++;
  }

  summary(): TimelineSummary {
    const from = Math.min(this.lead, this.windows);
    const n = this.windows;
    return {
      windowMs: TIMELINE_WINDOW_MS,
      count: Array.from(this.count.subarray(from, n)),
      maxMs: Array.from(this.max.subarray(from, n), (v) => Math.round(v * 1000) / 1000),
      over: TIMELINE_BOUNDS_MS.map((boundMs, b) => ({ boundMs, count: Array.from(this.over[b]!.subarray(from, n)) })),
    };
  }

  private grow(min: number): void {
    let size = this.count.length * 2;
    while (size < min) size *= 2;
    const count = new Int32Array(size);
    count.set(this.count);
    this.count = count;
    const max = new Float64Array(size);
    max.set(this.max);
    this.max = max;
    this.over = this.over.map((o) => {
      const next = new Int32Array(size);
      next.set(o);
      return next;
    });
  }
}

/** How concentrated a run's slow requests were, at the largest bound its p99 reaches. */
export interface TailConcentration {
  readonly boundMs: number;
  /** Requests over the bound. */
  readonly slow: number;
  readonly windows: number;
  /** Windows holding any of them. */
  readonly windowsWithSlow: number;
  /** The fewest windows holding half of them. */
  readonly windowsForHalf: number;
  /** The window holding most: its start (ms from the start of measurement), its slow requests, its slowest. */
  readonly worst: { readonly atMs: number; readonly slow: number; readonly maxMs: number };
}

/**
 * The tail's shape at the largest bound not above `p99Ms` (so at least ~1%
 * of requests are over it), or undefined when p99 is below the smallest
 * bound or nothing was slow.
 */
export function tailConcentration(t: TimelineSummary, p99Ms: number): TailConcentration | undefined {
  let pick: (typeof t.over)[number] | undefined;
  for (const o of t.over) if (o.boundMs <= p99Ms) pick = o;
  if (pick === undefined) return undefined;
  const counts = pick.count;
  let slow = 0;
  let withSlow = 0;
  let worstAt = 0;
  for (let w = 0; w < counts.length; w++) {
    const c = counts[w]!;
    slow += c;
    if (c > 0) withSlow++;
    if (c > counts[worstAt]!) worstAt = w;
  }
  if (slow === 0) return undefined;
  const sorted = [...counts].sort((a, b) => b - a);
  let acc = 0;
  let forHalf = 0;
  while (acc * 2 < slow) acc += sorted[forHalf++]!;
  return {
    boundMs: pick.boundMs,
    slow,
    windows: counts.length,
    windowsWithSlow: withSlow,
    windowsForHalf: forHalf,
    worst: { atMs: worstAt * t.windowMs, slow: counts[worstAt]!, maxMs: t.maxMs[worstAt] ?? 0 },
  };
}
