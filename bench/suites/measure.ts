import { runGenerator } from "../lib/generator.ts";
import { cpuSeconds, freePort, procCounters, startServer } from "../lib/processes.ts";
import type { RunningServer } from "../lib/processes.ts";
import { runWrk } from "../lib/wrk.ts";
import type { WrkRun } from "../lib/wrk.ts";
import { tailConcentration } from "../../loadtest/engine/timeline.ts";
import type { RunResult } from "../../loadtest/output/result.ts";
import type { BenchContext } from "./suite.ts";

/**
 * A bare Bun.serve (bench/servers/bare-server.ts) on the server's core,
 * answering bodies of `bodyBytes` bytes; `extra` passes its other options
 * (`--parse-json`, `--status 503`, `--content-type`).
 */
export function startBareServer(ctx: BenchContext, name: string, bodyBytes: number, extra: readonly string[] = []): Promise<RunningServer> {
  return startPinned(ctx, name, "bench/servers/bare-server.ts", ["--body-bytes", String(bodyBytes), ...extra], { readyPath: "/__ready", timeoutMs: 15_000 });
}

/** The environment `npm start` gives the server (package.json's start script; test/server-env.test.ts keeps them equal). */
export const SERVER_ENV: Readonly<Record<string, string>> = { BUN_GC_TIMER_DISABLE: "1" };

/**
 * Quiver's server (`src/main.ts`, as `npm start` runs it, SERVER_ENV included)
 * pinned to the server core; `args` follow `--port` (pass `--grpc-port -1` to leave gRPC off).
 */
export function startQuiverServer(ctx: BenchContext, name: string, args: readonly string[], options: { port?: number; timeoutMs?: number } = {}): Promise<RunningServer> {
  return startPinned(ctx, name, "src/main.ts", args, { readyPath: "/readyz", timeoutMs: options.timeoutMs ?? 300_000, port: options.port, env: SERVER_ENV });
}

/** A Bun script of this repository serving HTTP on `port` (a free one unless given), pinned to the server core, ready once `readyPath` answers. */
export function startPinned(ctx: BenchContext, name: string, script: string, args: readonly string[], o: { readyPath: string; timeoutMs: number; port?: number | undefined; env?: Readonly<Record<string, string>> }): Promise<RunningServer> {
  const port = o.port ?? freePort();
  return startServer({
    name,
    argv: [process.execPath, script, "--port", String(port), ...args],
    cpu: ctx.serverCpu,
    port,
    readyPath: o.readyPath,
    timeoutMs: o.timeoutMs,
    cwd: ctx.root,
    log: ctx.log,
    ...(o.env ? { env: o.env } : {}),
  });
}

/** A generator run plus how busy the server's core was meanwhile (1.0 = saturated). */
export interface GenMeasure {
  readonly run: RunResult;
  readonly serverCpu: number | null;
}

export interface WrkMeasure {
  readonly run: WrkRun;
  readonly serverCpu: number | null;
  /** The server's CPU per request (µs, user and kernel) and minor page faults per 1,000 requests over the run. */
  readonly perRequest: { readonly userUs: number; readonly systemUs: number; readonly minorFaultsPerK: number } | null;
}

/** Runs the generator against `server` pinned to the driver core; raw JSON kept as rawDir/<name>.json. */
export async function generator(ctx: BenchContext, server: RunningServer, name: string, args: Readonly<Record<string, string | number>>): Promise<GenMeasure> {
  const before = await cpuSeconds(server.pid);
  const t = performance.now();
  const run = await runGenerator({ root: ctx.root, cpu: ctx.driverCpu, jsonPath: `${ctx.rawDir}/${name}.json`, args: { target: server.url, ...args }, timeoutS: ctx.seconds * 3 + 60 });
  const serverCpu = await busy(server.pid, before, performance.now() - t);
  const ok = run.requests.errors > 0 ? ` (${Math.round((run.rate.achieved * run.requests.ok) / (run.requests.ok + run.requests.errors))} ok/s)` : "";
  ctx.log(`  ${name}: ${Math.round(run.rate.achieved)} req/s${ok}, p99 ${run.latencyMs.p99} ms, errors ${run.requests.errors}, server core ${pct(serverCpu)}`);
  return { run, serverCpu };
}

/** Runs wrk against `server` with a generated Lua script. */
export async function wrk(ctx: BenchContext, server: RunningServer, name: string, script: string, connections: number, seconds = ctx.throughputSeconds): Promise<WrkMeasure | null> {
  if (ctx.wrk.path === null) return null;
  const scriptPath = `${ctx.rawDir}/${name}.lua`;
  await Bun.write(scriptPath, script);
  const counters = await procCounters(server.pid);
  const before = counters === null ? null : counters.userS + counters.systemS;
  const t = performance.now();
  const run = await runWrk({ wrk: ctx.wrk.path, url: server.url, script: scriptPath, connections, threads: 1, durationS: seconds, cpu: ctx.driverCpu });
  const serverCpu = await busy(server.pid, before, performance.now() - t);
  const after = await procCounters(server.pid);
  const n = run.requestsPerSec * seconds;
  const perRequest =
    counters === null || after === null || !(n > 0)
      ? null
      : {
          userUs: round2(((after.userS - counters.userS) * 1e6) / n),
          systemUs: round2(((after.systemS - counters.systemS) * 1e6) / n),
          minorFaultsPerK: round2(((after.minorFaults - counters.minorFaults) * 1000) / n),
        };
  const per = perRequest === null ? "" : `, server ${perRequest.userUs} µs user + ${perRequest.systemUs} µs system per request, ${perRequest.minorFaultsPerK} page faults per 1k`;
  ctx.log(`  ${name}: ${run.requestsPerSec} req/s (wrk), errors ${run.errors + run.non2xx}, server core ${pct(serverCpu)}${per}`);
  return { run, serverCpu, perRequest };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

async function busy(pid: number, before: number | null, elapsedMs: number): Promise<number | null> {
  const after = await cpuSeconds(pid);
  if (before === null || after === null) return null;
  return Math.round(((after - before) / (elapsedMs / 1000)) * 100) / 100;
}

function pct(x: number | null): string {
  return x === null ? "n/a" : `${Math.round(x * 100)}%`;
}

/**
 * Throughput on a shared, noisy machine: runs baseline and subject alternately
 * `rounds` times (`rotate` with two sides: who goes first alternates too), so a
 * burst of outside load hits both sides alike and does not decide the ratio.
 */
export async function alternate<T>(rounds: number, runBase: (round: number) => Promise<T>, runSubject: (round: number) => Promise<T>): Promise<{ base: T[]; subject: T[] }> {
  const [base, subject] = await rotate(rounds, [runBase, runSubject]);
  return { base: base!, subject: subject! };
}

/**
 * `alternate` for more than two sides: each round runs every side once, the
 * round's first side rotating, so no side always runs right after the same
 * neighbour (a server warmed or disturbed by the run before it). Results come
 * back per side, in round order.
 */
export async function rotate<T>(rounds: number, sides: readonly ((round: number) => Promise<T>)[]): Promise<T[][]> {
  const out: T[][] = sides.map(() => []);
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < sides.length; k++) {
      const side = (i + k) % sides.length;
      out[side]!.push(await sides[side]!(i));
    }
  }
  return out;
}

/**
 * Where a latency run's slow requests were (the generator's timeline): "over 5 ms: 3,350 in 4
 * of 100 windows of 100 ms, half in 1, most at 3.2 s (2,280, max 38.8 ms)". A p99 that one
 * stall set reads differently from one the whole run set.
 */
export function tailShape(label: string, m: GenMeasure): string | undefined {
  const t = m.run.timeline;
  const c = t === undefined ? undefined : tailConcentration(t, m.run.latencyMs.p99);
  if (t === undefined || c === undefined) return undefined;
  return `${label} (p99 ${m.run.latencyMs.p99} ms): over ${c.boundMs} ms ${c.slow.toLocaleString("en-US")} requests in ${c.windowsWithSlow} of ${c.windows} windows of ${t.windowMs} ms, half of them in ${c.windowsForHalf}, most at ${c.worst.atMs / 1000} s (${c.worst.slow.toLocaleString("en-US")}, max ${c.worst.maxMs} ms)`;
}

/** A suite's note listing where each latency run's slow requests were (`tailShape`); none when no run has a timeline. */
export function tailNote(shapes: readonly (string | undefined)[]): string[] {
  const known = shapes.filter((x): x is string => x !== undefined);
  return known.length === 0 ? [] : [`Where each latency run's slow requests were (the generator's timeline, by due time; concentrated in a few windows: stalls, spread over all: the load): ${known.join("; ")}.`];
}

/**
 * Answers per second that succeeded (2xx). `rate.achieved` counts every
 * answer, and under load shedding a closed loop's refused requests come back
 * at once: a run that shed 3 in 4 read as the server's best.
 */
export function okRate(m: GenMeasure): number {
  const { ok, errors } = m.run.requests;
  return ok + errors === 0 ? 0 : (m.run.rate.achieved * ok) / (ok + errors);
}

/**
 * Each round's subject over its baseline (the two runs of a round are taken in
 * turn, seconds apart), and the median of those ratios; a round lacking either
 * side, or with a baseline of 0, is left out. Best-of-N on each side pairs
 * each side's luckiest moment; on a host whose speed swings within minutes
 * (12-06: Quiver's wrk rate 44.6k, then 19-20k req/s a quarter of an hour
 * later) the median paired ratio says how much of a best-of ratio was luck.
 */
export function pairedRatios(subject: readonly (number | null)[], baseline: readonly (number | null)[]): { readonly ratios: number[]; readonly median: number | null } {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(subject.length, baseline.length); i++) {
    const s = subject[i];
    const b = baseline[i];
    if (s === null || s === undefined || b === null || b === undefined || !(b > 0)) continue;
    ratios.push(s / b);
  }
  return { ratios, median: median(ratios) };
}

/** The median of some numbers (the mean of the middle two for an even count); null for none. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The run with the most successful answers per second. */
export function bestGen(runs: readonly GenMeasure[]): GenMeasure {
  return runs.reduce((a, b) => (okRate(b) > okRate(a) ? b : a));
}

/** Successful answers per second of a wrk run: its own rate counts every answer, 503s and errors included. */
export function wrkOkRate(r: WrkMeasure): number {
  const bad = r.run.non2xx + r.run.errors;
  return r.run.requests > 0 ? Math.round(r.run.requestsPerSec * Math.max(0, 1 - bad / r.run.requests)) : 0;
}

/** The wrk run with the most successful answers per second (as bestGen: a run that shed most of its requests is not a server's best). */
export function bestWrk(runs: readonly (WrkMeasure | null)[]): WrkMeasure | null {
  let best: WrkMeasure | null = null;
  for (const r of runs) if (r !== null && (best === null || wrkOkRate(r) > wrkOkRate(best))) best = r;
  return best;
}

/**
 * A latency run whose generator sent its p99 request later than this, while a
 * connection was free, was measuring the generator (BENCH_MAX_SEND_LAG_MS).
 * Lag spent waiting for a connection is not the generator's: every connection
 * was busy with a slow answer, and the corrected latency already counts it.
 */
export const MAX_SEND_LAG_P99_MS = Number(process.env["BENCH_MAX_SEND_LAG_MS"] ?? 0.5);
/** A bare-server baseline slower than this at p99 was disturbed by outside load (BENCH_MAX_BASELINE_P99_MS). */
export const MAX_BASELINE_P99_MS = Number(process.env["BENCH_MAX_BASELINE_P99_MS"] ?? 2);
/**
 * A server driven at half its measured max that needed more than this share of
 * its core was slower than when the max was measured: the host's speed moved in
 * between (BENCH_MAX_HALF_LOAD_CPU). Healthy runs read 0.6-0.7 (an open loop's
 * answers cost more CPU each than a closed loop's); 12-06, Intel host, one read
 * 0.81 with a p99 of 15 ms (the best throughput round had been 89k req/s, the
 * host then served ~55k).
 */
export const MAX_HALF_LOAD_CPU = Number(process.env["BENCH_MAX_HALF_LOAD_CPU"] ?? 0.75);
/**
 * A run where stalls of the generator's own loop (loadtest/engine/own-stalls.ts)
 * touched more than this share of the requests lagged: answers that waited
 * unread through them count as latency, and a p99 moves once 1% of requests
 * do (BENCH_MAX_OWN_STALL_SHARE).
 */
export const MAX_OWN_STALL_SHARE = Number(process.env["BENCH_MAX_OWN_STALL_SHARE"] ?? 0.005);
/** Attempts per latency measurement before the last one is kept, flagged. */
export const LATENCY_ATTEMPTS = Number(process.env["BENCH_LATENCY_ATTEMPTS"] ?? 3);
/**
 * Rounds of a judged latency comparison (BENCH_LATENCY_ROUNDS, default 3;
 * `--quick` runs 1): each a baseline and its subject back to back, the round
 * with the median p99 ratio reported (Hygiene.medianRound). Read when asked,
 * as `--quick` sets it after the suites are loaded.
 */
export function latencyRounds(): number {
  return Number(process.env["BENCH_LATENCY_ROUNDS"] ?? 3);
}

/** A latency baseline and its subject, measured back to back. */
export interface LatencyPair {
  readonly baseline: GenMeasure;
  readonly subject: GenMeasure;
}

/** What Hygiene.medianRound kept: the median round's pair, which round that was, and every round. */
export interface MedianRound extends LatencyPair {
  /** The kept round (0-based). */
  readonly kept: number;
  /** Every round's pair (its last attempt), in order, and whether it was steady. */
  readonly rounds: readonly { readonly pair: LatencyPair; readonly steady: boolean }[];
}

/** A pair's subject p99 over its baseline's (infinite over a zero baseline, so such a round sorts last). */
export function p99Ratio(pair: LatencyPair): number {
  const b = pair.baseline.run.latencyMs.p99;
  return b > 0 ? pair.subject.run.latencyMs.p99 / b : Number.POSITIVE_INFINITY;
}

/** Latency runs thrown away and why, for the summary. */
export class Hygiene {
  readonly discarded: string[] = [];
  readonly unsteady: string[] = [];
  private readonly unsteadyLabels = new Set<string>();

  /**
   * Why a run cannot be reported, or null. `baseline` runs must also be
   * undisturbed; a subject `atHalfMax` must not have needed more than
   * MAX_HALF_LOAD_CPU of its core.
   */
  static why(m: GenMeasure, baseline: boolean, atHalfMax = false): string | null {
    // Results written before the own lag was split out carry only the whole send lag.
    const lag = (m.run.ownSendLagMs ?? m.run.sendLagMs).p99;
    if (m.run.mode === "open" && lag > MAX_SEND_LAG_P99_MS) return `generator's own send lag p99 ${lag} ms > ${MAX_SEND_LAG_P99_MS} ms`;
    // Results written before the generator measured its own loop stalls carry none.
    const stalls = m.run.ownStalls;
    const answered = m.run.latencyMs.count;
    if (stalls !== undefined && answered > 0 && stalls.requestsInFlight > MAX_OWN_STALL_SHARE * answered) {
      return `generator's own loop stalled ${stalls.count} times (longest ${Math.round(stalls.maxMs * 10) / 10} ms), touching ${stalls.requestsInFlight} of ${answered} requests > ${MAX_OWN_STALL_SHARE * 100}%`;
    }
    if (baseline && m.run.latencyMs.p99 > MAX_BASELINE_P99_MS) return `baseline p99 ${m.run.latencyMs.p99} ms > ${MAX_BASELINE_P99_MS} ms (disturbed)`;
    if (atHalfMax && !baseline && m.serverCpu !== null && m.serverCpu > MAX_HALF_LOAD_CPU) {
      return `server busy ${Math.round(m.serverCpu * 100)}% of its core at half its measured max > ${Math.round(MAX_HALF_LOAD_CPU * 100)}% (the host slowed since the max was measured)`;
    }
    return null;
  }

  /**
   * A judged latency comparison measured `rounds` times, each round a
   * baseline and its subject back to back (`measure(round)`), measured again
   * while either run cannot be reported (`why`: a lagging generator, a
   * disturbed baseline, a server slower than at its max), up to
   * LATENCY_ATTEMPTS times a round; the round with the median
   * subject/baseline p99 ratio is reported, its baseline and subject from the
   * same round. Why: a 10 s run's p99 is one host stall away from another
   * figure, in either direction (12-07: one subject run caught by a stall read
   * 46.5 ms against its baseline's 1.9, and a stall in a baseline run flatters
   * the subject), and those checks catch a lagging generator or a disturbed
   * baseline, not a subject run the host stalled. Rounds still unsteady after
   * their attempts are left out while a steady one exists (listed as
   * discarded); with none steady the label is unsteady, reported and not
   * judged. With an even count, the higher of the middle two is kept (the
   * verdict leans against the subject).
   */
  async medianRound(
    ctx: BenchContext,
    label: string,
    rounds: number,
    measure: (round: number) => Promise<LatencyPair>,
    options: { readonly atHalfMax?: boolean } = {},
  ): Promise<MedianRound> {
    if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`medianRound: rounds must be a positive integer, got ${rounds}`);
    const done: { pair: LatencyPair; steady: boolean; why: string | null }[] = [];
    for (let r = 0; r < rounds; r++) {
      for (let attempt = 1; ; attempt++) {
        const pair = await measure(r);
        const why = Hygiene.why(pair.baseline, true) ?? Hygiene.why(pair.subject, false, options.atHalfMax ?? false);
        if (why === null || attempt >= LATENCY_ATTEMPTS) {
          done.push({ pair, steady: why === null, why });
          break;
        }
        this.discarded.push(`${label}, round ${r + 1}: ${why}`);
        ctx.log(`  ${label}, round ${r + 1}: discarded (${why}), measuring again`);
      }
    }
    const steady = done.filter((d) => d.steady);
    for (const [r, d] of done.entries()) {
      if (d.steady || steady.length === 0) continue;
      this.discarded.push(`${label}, round ${r + 1}: ${d.why} after ${LATENCY_ATTEMPTS} attempts, left out of the median`);
      ctx.log(`  ${label}, round ${r + 1}: still ${d.why} after ${LATENCY_ATTEMPTS} attempts, left out of the median`);
    }
    if (steady.length === 0) {
      const why = done[done.length - 1]!.why!;
      this.unsteady.push(`${label}: ${why}`);
      this.unsteadyLabels.add(label);
      ctx.log(`  ${label}: every round still unsteady after ${LATENCY_ATTEMPTS} attempts (${why}), kept unjudged`);
    }
    const pool = (steady.length > 0 ? steady : done).slice().sort((a, b) => p99Ratio(a.pair) - p99Ratio(b.pair));
    const chosen = pool[pool.length >> 1]!;
    const kept = done.indexOf(chosen);
    ctx.log(`  ${label}: p99 by round ${done.map((d) => `${d.pair.subject.run.latencyMs.p99} / ${d.pair.baseline.run.latencyMs.p99} ms${d.steady ? "" : " (unsteady)"}`).join(", ")}; round ${kept + 1} kept (median ratio)`);
    return { ...chosen.pair, kept, rounds: done.map((d) => ({ pair: d.pair, steady: d.steady })) };
  }

  /**
   * A latency check's verdict: none (null) when the runs behind `label` were
   * still unsteady after every attempt. Such a run is reported, not judged: a
   * lagged generator or a disturbed baseline says nothing about the server,
   * in either direction (a disturbed baseline once made a 7 ms p99 read as
   * half the bare server's).
   */
  judge(label: string, pass: boolean | null): boolean | null {
    return this.unsteadyLabels.has(label) ? null : pass;
  }

  /** `target`, marked when the runs behind `label` are reported but not judged. */
  target(label: string, target: string): string {
    return this.unsteadyLabels.has(label) ? `${target} (not judged: the run stayed unsteady)` : target;
  }

  /** The summary's note. */
  note(): string {
    const parts = [
      `Latency hygiene: a run whose generator's own send-lag p99 (late while a connection was free) exceeded ${MAX_SEND_LAG_P99_MS} ms, whose generator's own loop stalls touched more than ${MAX_OWN_STALL_SHARE * 100}% of its requests, whose bare-server baseline p99 exceeded ${MAX_BASELINE_P99_MS} ms, or (at half max) whose server needed more than ${Math.round(MAX_HALF_LOAD_CPU * 100)}% of its core, was discarded and measured again (up to ${LATENCY_ATTEMPTS} attempts): ${this.discarded.length} run(s) discarded${this.discarded.length > 0 ? ` (${this.discarded.join("; ")})` : ""}.`,
    ];
    if (this.unsteady.length > 0) parts.push(`Still unsteady after ${LATENCY_ATTEMPTS} attempts, reported anyway: ${this.unsteady.join("; ")}.`);
    return parts.join(" ");
  }
}
