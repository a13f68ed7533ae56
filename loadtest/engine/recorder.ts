import { build } from "hdr-histogram-js";
import type { Histogram } from "hdr-histogram-js";
import { Timeline } from "./timeline.ts";

/** Latency is recorded in microseconds; 1 µs .. 1 h at 3 significant digits. */
export function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

function toMicros(ms: number): number {
  const us = Math.round(ms * 1000);
  return Math.max(us, 1);
}

/** Records `us` in the histogram `byStatus` holds for `status`, made on its first answer. */
function recordByStatus(byStatus: Map<number, Histogram>, status: number, us: number): void {
  let h = byStatus.get(status);
  if (h === undefined) {
    h = newHistogram();
    byStatus.set(status, h);
  }
  h.recordValue(us);
}

/**
 * Collects one run: latency from the intended send time (coordinated-omission
 * corrected), service time from the actual send, and the generator's own send lag.
 * Per-tag histograms let a mixed run report reads and writes apart.
 */
export class Recorder {
  readonly latency = newHistogram();
  readonly service = newHistogram();
  readonly sendLag = newHistogram();
  /** Send lag while a connection was free: the generator's own lateness (its CPU, its timers), not the server's backlog. */
  readonly ownSendLag = newHistogram();
  /** Distinct tags, and the tag index of each template. */
  readonly tags: readonly string[];
  readonly byTag: Histogram[];
  private readonly tagOf: Int32Array;
  readonly errors = new Map<string, number>();
  readonly statuses = new Map<number, number>();
  /** Latency by HTTP status: under load shedding, what served requests saw apart from the refused ones. */
  readonly byStatus = new Map<number, Histogram>();
  /** Service time (from the actual send) by HTTP status: how fast a refusal came once the request was on the wire. */
  readonly serviceByStatus = new Map<number, Histogram>();
  /**
   * Latency by HTTP status of the requests whose time from due to answered
   * overlapped no stall of the generator's own loop (own-stalls.ts): the
   * server's latency without the generator's. The rest are counted apart.
   */
  readonly clearByStatus = new Map<number, Histogram>();
  /** Requests in flight (from due to answered) during a stall of the generator's own loop. */
  duringOwnStall = 0;
  ok = 0;
  failed = 0;
  /** Where in the run the slow requests were (timeline.ts). */
  readonly timeline: Timeline;
  /** Requests completed (any outcome) in the current progress interval. */
  intervalCount = 0;

  /** `timelineLead`: windows of the timeline before the measured ones (Timeline). */
  constructor(templateTags: readonly string[], timelineLead = 0) {
    this.timeline = new Timeline(timelineLead);
    this.tags = [...new Set(templateTags)];
    this.tagOf = Int32Array.from(templateTags.map((t) => this.tags.indexOf(t)));
    this.byTag = this.tags.map(() => newHistogram());
  }

  /**
   * A response arrived; non-2xx statuses count as errors (`http_<status>`) but keep their latency.
   * `dueMs`: when it was due, from the timeline's origin (its window there).
   * `ownStall`: the generator's own loop stalled while it was due or in flight.
   */
  response(template: number, status: number, latencyMs: number, serviceMs: number, lagMs: number, ownLagMs = lagMs, dueMs = 0, ownStall = false): void {
    const us = toMicros(latencyMs);
    this.timeline.record(dueMs, latencyMs);
    this.latency.recordValue(us);
    this.byTag[this.tagOf[template] ?? 0]?.recordValue(us);
    const serviceUs = toMicros(serviceMs);
    this.service.recordValue(serviceUs);
    this.sendLag.recordValue(toMicros(lagMs));
    this.ownSendLag.recordValue(toMicros(ownLagMs));
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    recordByStatus(this.byStatus, status, us);
    recordByStatus(this.serviceByStatus, status, serviceUs);
    if (ownStall) this.duringOwnStall++;
    else recordByStatus(this.clearByStatus, status, us);
    this.intervalCount++;
    if (status >= 200 && status < 300) this.ok++;
    else this.error(`http_${status}`);
  }

  /** A request without a response (timeout, reset, protocol error, never sent). */
  failure(kind: string, count = 1): void {
    this.intervalCount += count;
    this.error(kind, count);
  }

  get completed(): number {
    let n = 0;
    for (const c of this.statuses.values()) n += c;
    return n + this.transportFailures;
  }

  private transportFailures = 0;

  private error(kind: string, count = 1): void {
    this.failed += count;
    if (!kind.startsWith("http_")) this.transportFailures += count;
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + count);
  }
}
