import { encodeIntoCompressedBase64 } from "hdr-histogram-js";
import type { Histogram } from "hdr-histogram-js";
import type { GcPaceStats, LoadOutcome } from "../engine/run-load.ts";
import type { TimelineSummary } from "../engine/timeline.ts";
import type { OwnStallSummary } from "../engine/own-stalls.ts";

/** Percentiles in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p99_9: number;
  readonly p99_99: number;
  readonly max: number;
  readonly mean: number;
}

/** What one run writes with `--json`; the report reads `distribution` and `latencyMs`. */
export interface RunResult {
  readonly tool: "quiver-loadtest";
  readonly version: 1;
  readonly label: string;
  readonly scenario: string;
  readonly mode: "open" | "closed";
  readonly target: string;
  readonly startedAt: string;
  readonly options: Readonly<Record<string, string | number | boolean | null>>;
  readonly rate: { readonly target: number | null; readonly achieved: number };
  readonly requests: { readonly sent: number; readonly ok: number; readonly errors: number; readonly unsent: number };
  readonly errorsByKind: Readonly<Record<string, number>>;
  readonly statusCounts: Readonly<Record<string, number>>;
  /** From each request's intended send time (open loop: corrected for coordinated omission). */
  readonly latencyMs: LatencySummary;
  /** From the actual send time (what a closed-loop tool would report). */
  readonly serviceTimeMs: LatencySummary;
  /** How late the generator sent requests (backlog or its own CPU). */
  readonly sendLagMs: LatencySummary;
  /**
   * How late it sent them while a connection was free: its own lateness. The
   * rest of the send lag is requests waiting for a connection while every one
   * was busy with a slow answer, which is the server's latency (open loop).
   */
  readonly ownSendLagMs: LatencySummary;
  readonly byTag: Readonly<Record<string, LatencySummary>>;
  /** Latency (from the intended send time) by HTTP status, e.g. admitted (200) apart from shed (503) answers. */
  readonly latencyByStatusMs: Readonly<Record<string, LatencySummary>>;
  /** Service time (from the actual send) by HTTP status: a refusal's own round trip, without the generator's lag. */
  readonly serviceByStatusMs: Readonly<Record<string, LatencySummary>>;
  /** [percentile 0..100, latency ms], dense in the tail, for plots. */
  readonly distribution: readonly (readonly [number, number])[];
  /** HdrHistogram of latency in µs, compressed base64 (V2 encoding). */
  readonly histogram: string;
  readonly cpu: LoadOutcome["cpu"];
  /** The generator's own paced young collections (--gc-pace); null when left to the runtime. */
  readonly generatorGc: GcPaceStats | null;
  readonly connectFailures: number;
  /** Per window of intended send time: requests, the slowest, requests over each bound (engine/timeline.ts). Absent in results written before it. */
  readonly timeline?: TimelineSummary;
  /**
   * Stalls of the generator's own event loop in the measured window
   * (engine/own-stalls.ts): answers that arrived during one waited unread and
   * count as latency. Absent in results written before it.
   */
  readonly ownStalls?: OwnStallSummary & { readonly requestsInFlight: number };
  /** Latency by HTTP status of the requests no such stall overlapped (from due to answered): the server's latency without the generator's stalls. */
  readonly latencyByStatusWithoutOwnStallsMs?: Readonly<Record<string, LatencySummary>>;
}

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, p99_99: 0, max: 0, mean: 0 };
  const at = (p: number) => h.getValueAtPercentile(p) / 1000;
  return {
    count: h.totalCount,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p99_9: at(99.9),
    p99_99: at(99.99),
    max: h.maxValue / 1000,
    mean: round3(h.mean / 1000),
  };
}

/** Points evenly spaced in "nines" (x = -log10(1 - p)) up to the resolution the count allows. */
export function distribution(h: Histogram): [number, number][] {
  const n = h.totalCount;
  if (n === 0) return [];
  const maxNines = Math.max(1, Math.log10(n));
  const out: [number, number][] = [];
  for (let x = 0; x < maxNines; x += 0.025) {
    const p = 100 * (1 - 10 ** -x);
    out.push([round6(p), h.getValueAtPercentile(p) / 1000]);
  }
  out.push([100, h.maxValue / 1000]);
  return out;
}

export interface ResultMeta {
  readonly label: string;
  readonly scenario: string;
  readonly mode: "open" | "closed";
  readonly target: string;
  readonly startedAt: Date;
  readonly targetRate: number | null;
  readonly options: Readonly<Record<string, string | number | boolean | null>>;
}

export function buildResult(meta: ResultMeta, o: LoadOutcome): RunResult {
  const r = o.recorder;
  const byTag: Record<string, LatencySummary> = {};
  r.tags.forEach((tag, i) => {
    const h = r.byTag[i];
    if (h !== undefined && h.totalCount > 0) byTag[tag] = summarize(h);
  });
  return {
    tool: "quiver-loadtest",
    version: 1,
    label: meta.label,
    scenario: meta.scenario,
    mode: meta.mode,
    target: meta.target,
    startedAt: meta.startedAt.toISOString(),
    options: meta.options,
    rate: { target: meta.targetRate, achieved: Math.round(o.achievedRate) },
    requests: { sent: o.sent, ok: r.ok, errors: r.failed, unsent: o.unsent },
    errorsByKind: Object.fromEntries(r.errors),
    statusCounts: Object.fromEntries([...r.statuses].map(([k, v]) => [String(k), v])),
    latencyMs: summarize(r.latency),
    serviceTimeMs: summarize(r.service),
    sendLagMs: summarize(r.sendLag),
    ownSendLagMs: summarize(r.ownSendLag),
    byTag,
    latencyByStatusMs: Object.fromEntries([...r.byStatus].map(([k, h]) => [String(k), summarize(h)])),
    serviceByStatusMs: Object.fromEntries([...r.serviceByStatus].map(([k, h]) => [String(k), summarize(h)])),
    distribution: distribution(r.latency),
    histogram: encodeIntoCompressedBase64(r.latency),
    cpu: o.cpu,
    generatorGc: o.gcPace ?? null,
    connectFailures: o.connectFailures,
    timeline: r.timeline.summary(),
    ownStalls: { ...o.ownStalls, maxMs: round3(o.ownStalls.maxMs), totalMs: round3(o.ownStalls.totalMs), requestsInFlight: r.duringOwnStall },
    latencyByStatusWithoutOwnStallsMs: Object.fromEntries([...r.clearByStatus].map(([k, h]) => [String(k), summarize(h)])),
  };
}

/** Error share of all requests in the window. */
export function errorRate(r: RunResult): number {
  const total = r.requests.ok + r.requests.errors;
  return total === 0 ? 0 : r.requests.errors / total;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
