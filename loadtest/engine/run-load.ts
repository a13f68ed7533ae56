import type { YoungGc } from "../../src/runtime/gc.ts";
import type { KeySampler } from "../keys.ts";
import { Http1Connection } from "../http1/connection.ts";
import type { ConnectionListener } from "../http1/connection.ts";
import type { LoadConnection } from "./load-connection.ts";
import { Prng } from "../prng.ts";
import type { RequestTemplate } from "../template.ts";
import { Recorder } from "./recorder.ts";
import { TIMELINE_WINDOW_MS } from "./timeline.ts";
import { OwnStalls, type OwnStallSummary } from "./own-stalls.ts";

/** The own-stall tick (own-stalls.ts): every 2 ms; later than 5 ms past it is a stall (4 of 5 undisturbed runs at 22k req/s on 256 connections recorded none). */
const OWN_STALL_EVERY_MS = 2;
const OWN_STALL_THRESHOLD_MS = 5;

export type LoadMode = "open" | "closed";

export interface LoadConfig {
  readonly mode: LoadMode;
  readonly hostname: string;
  readonly port: number;
  /** Requests per second (open loop only). */
  readonly rate: number;
  readonly connections: number;
  readonly durationMs: number;
  /** Load before the measured window; its requests are not recorded. */
  readonly warmupMs: number;
  readonly timeoutMs: number;
  readonly templates: readonly RequestTemplate[];
  readonly weights: readonly number[];
  readonly keys: KeySampler;
  readonly seed: number | string;
  /** Hard bound on requests sent (safety net on top of the duration). */
  readonly maxRequests: number;
  readonly onProgress?: (p: Progress) => void;
  /** Opens connection `id`; HTTP/1 unless a scenario brings its own transport (gRPC). */
  readonly openConnection?: (id: number, listener: ConnectionListener<LoadConnection>) => LoadConnection;
  /** Collects the generator's own young generation every `everyMs` while the run lasts (see GcPace). */
  readonly gcPace?: GcPace;
}

/**
 * The generator's own young collections, paced. Each socket read leaves
 * native memory that only a collection frees, and a young collection's pause
 * grows with the requests handled since the last one: left to the runtime
 * (one every ~3k requests), the generator paused 1.1–2.4 ms at a time, and
 * every pause made due requests late and held answers unread (counted as the
 * server's latency). Against a bare server at 20k req/s (12-05): own send-lag
 * p99 0.6–1.2 ms in 14 unpaced runs, none under the bench's 0.5 ms bound;
 * paced every 5–20 ms, 0.28–0.43 ms in 13 of 14 (pauses 0.14–0.42 ms on
 * average), with the same closed-loop max rate.
 */
export interface GcPace {
  readonly gc: YoungGc;
  readonly everyMs: number;
}

/** What the paced collections cost the generator during the run. */
export interface GcPaceStats {
  readonly everyMs: number;
  readonly collections: number;
  readonly meanPauseMs: number;
  readonly maxPauseMs: number;
}

export interface Progress {
  readonly elapsedMs: number;
  readonly completed: number;
  readonly errors: number;
  readonly inFlight: number;
  readonly backlog: number;
  readonly intervalRate: number;
  readonly p99Ms: number;
}

export interface LoadOutcome {
  readonly recorder: Recorder;
  readonly sent: number;
  readonly unsent: number;
  readonly measuredMs: number;
  readonly achievedRate: number;
  readonly cpu: { readonly userMs: number; readonly systemMs: number; readonly utilization: number };
  readonly connectFailures: number;
  /** Undefined when the run left collections to the runtime. */
  readonly gcPace: GcPaceStats | undefined;
  /** Stalls of the generator's own loop in the measured window (own-stalls.ts). */
  readonly ownStalls: OwnStallSummary;
}

/**
 * Drives one run. Open loop: request i is due at t0 + i/rate whatever the server
 * does; when every connection is busy it waits in a backlog, and its latency is
 * taken from the due time, so stalls show up in the percentiles (coordinated-
 * omission correction, as in wrk2). Closed loop: each connection sends its next
 * request as soon as the previous answer arrives, for maximum throughput.
 */
export async function runLoad(cfg: LoadConfig): Promise<LoadOutcome> {
  if (cfg.gcPace !== undefined && !(cfg.gcPace.everyMs > 0)) throw new Error(`gc pace: expected a positive interval, got ${cfg.gcPace.everyMs} ms`);
  const rng = new Prng(cfg.seed);
  // The timeline's windows start at the measurement's start; `lead` whole windows before it hold the warm-up's due times.
  const lead = Math.floor(cfg.warmupMs / TIMELINE_WINDOW_MS) + 1;
  const rec = new Recorder(cfg.templates.map((t) => t.tag), lead);
  // Warm-up answers are recorded as measured ones are, into a recorder that is dropped: the same code on the
  // same kind of object before and after measurement starts (see onResponse).
  const recorders = [new Recorder(cfg.templates.map((t) => t.tag), lead), rec];
  const cumulative = cumulativeWeights(cfg.weights);
  const totalWeight = cumulative[cumulative.length - 1] ?? 1;
  const maxRows = Math.max(1, ...cfg.templates.map((t) => t.rows));
  const scratch = new Float64Array(maxRows);
  const idle: LoadConnection[] = [];
  const open = cfg.mode === "open";
  const intervalMs = open ? 1000 / cfg.rate : 0;
  const plannedMs = cfg.warmupMs + cfg.durationMs;
  const total = open ? Math.min(cfg.maxRequests, Math.floor((plannedMs * cfg.rate) / 1000)) : cfg.maxRequests;
  let t0 = 0;
  let measureStart = 0;
  /** Before the run's start: due times counted from here are never negative (Timeline). */
  let timelineOrigin = 0;
  let stopAt = 0;
  let next = 0;
  let inFlight = 0;
  let connectFailures = 0;
  let lastCompletion = 0;
  /** When the latest request that has since been answered or failed went out (open mode's achieved-rate window). */
  let lastSent = 0;
  let timerArmed = false;
  let finished = false;
  let finish: () => void = () => {};

  const dispatch = (conn: LoadConnection, intendedAt: number, now: number): void => {
    let ti = 0;
    if (cumulative.length > 1) {
      const u = rng.nextFloat() * totalWeight;
      while ((cumulative[ti] ?? totalWeight) <= u) ti++;
    }
    const t = cfg.templates[ti] as RequestTemplate;
    let buf = conn.buffers[ti];
    if (buf === undefined) {
      buf = t.bytes.slice();
      conn.buffers[ti] = buf;
    }
    t.fill(buf, rng, cfg.keys, scratch);
    conn.template = ti;
    conn.intendedAt = intendedAt;
    next++;
    inFlight++;
    conn.send(buf, now);
  };

  const pump = (): void => {
    if (finished) return;
    const now = performance.now();
    if (open) {
      const due = Math.min(total, Math.floor((now - t0) / intervalMs) + 1);
      while (next < due) {
        const conn = idle.pop();
        if (conn === undefined) break;
        if (conn.busy) continue; // told ready twice (see onReady): already in flight
        dispatch(conn, t0 + next * intervalMs, now);
      }
      if (next < total && next >= due && !timerArmed) {
        // Timers fire on a 1 ms grid, which alone would add up to 1 ms to every
        // latency: sleep until about 1 ms before the due time, then poll.
        timerArmed = true;
        const wait = t0 + next * intervalMs - now;
        if (wait > 1.5) setTimeout(onTimer, wait - 1);
        else setImmediate(onTimer);
      }
    } else {
      while (now < stopAt && next < total) {
        const conn = idle.pop();
        if (conn === undefined) break;
        if (conn.busy) continue; // told ready twice (see onReady): already in flight
        dispatch(conn, now, now);
      }
    }
    checkDone(now);
  };
  const onTimer = (): void => {
    timerArmed = false;
    pump();
  };
  const checkDone = (now: number): void => {
    const schedulingOver = open ? next >= total : now >= stopAt || next >= total;
    if (schedulingOver && inFlight === 0) finish();
  };

  const stalls = new OwnStalls(OWN_STALL_EVERY_MS, OWN_STALL_THRESHOLD_MS);
  const listener: ConnectionListener<LoadConnection> = {
    onResponse(conn, status, reusable) {
      const now = performance.now();
      // A stall that just ended is recorded before the answers that waited through it (own-stalls.ts).
      stalls.observe(now);
      inFlight--;
      lastCompletion = now;
      if (conn.sentAt > lastSent) lastSent = conn.sentAt;
      // Own lag: from when the request was due and a connection was free to when it went out.
      const ready = Math.max(conn.idleAt, conn.intendedAt);
      // Every answer, warm-up or measured, takes this same path: the recorder is picked by index, not
      // by a branch. Code that starts recording (or takes a new branch) when measurement starts is
      // compiled again then, and this generator shares its core with its compiler threads: with a
      // branch here, the first ~0.8 s of every measured run held most of its slow requests (a 10 s
      // run at 30k/s: over 1 ms, 1.4–1.8k requests in its 4th 100-ms window alone, against 0–170).
      recorders[+(conn.intendedAt >= measureStart)]!.response(conn.template, status, now - conn.intendedAt, now - conn.sentAt, conn.sentAt - conn.intendedAt, conn.sentAt - ready, conn.intendedAt - timelineOrigin, stalls.overlaps(conn.intendedAt, now));
      if (reusable) {
        conn.idleAt = now;
        idle.push(conn);
      }
      pump();
    },
    onFailure(conn, kind, hadRequest) {
      if (!hadRequest) {
        connectFailures++;
        return;
      }
      inFlight--;
      lastCompletion = performance.now();
      if (conn.sentAt > lastSent) lastSent = conn.sentAt;
      if (conn.intendedAt >= measureStart) rec.failure(kind);
      checkDone(lastCompletion);
    },
    // A connection that reconnected while it was free (the server closed it while idle) says it is
    // ready again while it is still among the free ones: the stack may hold it twice, and pump skips
    // an entry whose connection is already busy, so it never carries two requests at once.
    onReady(conn) {
      conn.idleAt = performance.now();
      idle.push(conn);
      pump();
    },
  };

  const open1 = cfg.openConnection ?? ((id: number, l: ConnectionListener<LoadConnection>) => new Http1Connection(id, cfg.hostname, cfg.port, l));
  const conns: LoadConnection[] = [];
  for (let i = 0; i < cfg.connections; i++) conns.push(open1(i, listener));
  await Promise.all(conns.map((c) => c.connect())).catch((e: unknown) => {
    for (const c of conns) c.stop();
    throw new Error(`cannot connect to ${cfg.hostname}:${cfg.port}: ${(e as Error).message}`);
  });
  idle.push(...conns.slice().reverse());

  const cpu0 = process.cpuUsage();
  t0 = performance.now();
  measureStart = t0 + cfg.warmupMs;
  timelineOrigin = measureStart - lead * TIMELINE_WINDOW_MS;
  stopAt = t0 + plannedMs;
  const done = new Promise<void>((resolve) => {
    finish = () => {
      if (finished) return;
      finished = true;
      resolve();
    };
  });
  const pacing = cfg.gcPace === undefined ? undefined : startGcPace(cfg.gcPace);
  const sweepEvery = Math.max(5, Math.min(100, cfg.timeoutMs / 4));
  let lastTick = t0;
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const c of conns) if (c.busy && now - c.sentAt > cfg.timeoutMs) c.abort("timeout");
    // Hard stop: the planned time, plus one timeout for stragglers and the backlog.
    if (now > stopAt + cfg.timeoutMs + 1000) finish();
    else checkDone(now);
    if (cfg.onProgress !== undefined && now - lastTick >= 1000) {
      cfg.onProgress({
        elapsedMs: now - t0,
        completed: rec.ok + rec.failed,
        errors: rec.failed,
        inFlight,
        backlog: open ? Math.max(0, Math.min(total, Math.floor((now - t0) / intervalMs) + 1) - next) : 0,
        intervalRate: (rec.intervalCount * 1000) / (now - lastTick),
        p99Ms: rec.latency.totalCount > 0 ? rec.latency.getValueAtPercentile(99) / 1000 : 0,
      });
      rec.intervalCount = 0;
      lastTick = now;
    }
  }, sweepEvery);
  stalls.tick(performance.now());
  const stallTicker = setInterval(() => stalls.tick(performance.now()), OWN_STALL_EVERY_MS);
  let gcPace: GcPaceStats | undefined;
  try {
    pump();
    await done;
  } finally {
    // Also when a template or the transport throws: no timer may outlive the run.
    clearInterval(sweeper);
    clearInterval(stallTicker);
    gcPace = pacing?.stop();
  }
  const end = performance.now();
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) {
    if (c.busy && c.intendedAt >= measureStart) rec.failure("timeout");
    c.stop();
  }
  const unsent = open ? total - next : 0;
  if (unsent > 0) rec.failure("unsent", unsent);
  // Open loop: the window ends when the schedule did, or later when requests went out late (the generator lagged);
  // a straggler's answer (or its timeout) does not stretch it: one hung request in 2,500 read a 1,000/s step sent on
  // schedule as 666/s. Closed loop: until the last answer.
  const measuredMs = Math.max(1, Math.max(open ? lastSent : lastCompletion, Math.min(end, stopAt)) - measureStart);
  const wallMs = end - t0;
  return {
    recorder: rec,
    sent: next,
    unsent,
    measuredMs,
    achievedRate: ((rec.ok + rec.failed - unsent) * 1000) / measuredMs,
    cpu: { userMs: cpu.user / 1000, systemMs: cpu.system / 1000, utilization: (cpu.user + cpu.system) / 1000 / wallMs },
    connectFailures,
    gcPace,
    ownStalls: stalls.summary(measureStart),
  };
}

function startGcPace(pace: GcPace): { stop(): GcPaceStats } {
  let collections = 0;
  let total = 0;
  let max = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    pace.gc.collect();
    const pause = performance.now() - t;
    collections++;
    total += pause;
    if (pause > max) max = pause;
  }, pace.everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return { everyMs: pace.everyMs, collections, meanPauseMs: collections === 0 ? 0 : total / collections, maxPauseMs: max };
    },
  };
}

function cumulativeWeights(weights: readonly number[]): number[] {
  let acc = 0;
  return weights.map((w) => {
    if (!(w >= 0)) throw new Error(`scenario weight must be >= 0, got ${w}`);
    acc += w;
    return acc;
  });
}
