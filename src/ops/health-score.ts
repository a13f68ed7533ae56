import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import type { Admission } from "../resilience/admission.ts";

/** Each factor as a load from 0 (idle) to 1 (saturated). */
export interface HealthFactors {
  /** In-flight requests over the admission limit. */
  readonly active: number;
  /** Queued requests over the queue's capacity. */
  readonly queue: number;
  /** CPU time over wall time in the last interval (1 = one core busy). */
  readonly cpu: number;
  /** Resident memory over the memory limit (cgroup limit, else the machine's memory). */
  readonly memory: number;
  /** 5xx answers and shed requests over all requests in the last interval. */
  readonly errors: number;
  /** Last interval's p99 over twice the latency target. */
  readonly latency: number;
}

export interface HealthReport {
  /** 0 (unusable) to 100 (idle and healthy). */
  readonly score: number;
  readonly factors: HealthFactors;
  /** For an autoscaler: requests in flight now and the last interval's p99 (ms). */
  readonly inFlight: number;
  readonly p99Ms: number;
}

/** Weights of the factors; they sum to 1, so a pod saturated on every factor scores 0. */
const WEIGHTS: Readonly<Record<keyof HealthFactors, number>> = { active: 0.25, queue: 0.15, cpu: 0.15, memory: 0.1, errors: 0.2, latency: 0.15 };

export interface HealthMonitorOptions {
  /** Latency target (ms): a p99 of twice this counts as saturated. Default 50 (the lookup budget). */
  readonly targetMs?: number;
  /** Memory limit in bytes; default the cgroup limit when there is one, else the machine's memory. */
  readonly memoryLimitBytes?: number;
  /** Sampling period (default 1000 ms). */
  readonly intervalMs?: number;
  readonly cpuMicros?: () => number;
  readonly rssBytes?: () => number;
  readonly now?: () => number;
}

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

/** The cgroup v2 (or v1) memory limit of this container, when it has one. */
function cgroupMemoryLimit(): number | undefined {
  for (const path of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const n = Number(readFileSync(path, "utf8").trim());
      if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
    } catch {
      // Not in a cgroup with a limit.
    }
  }
  return undefined;
}

/**
 * A 0–100 health score sampled once per interval (off the request path) from
 * in-flight requests, queue, CPU, memory, error rate and p99 latency:
 * `100 × (1 − Σ weight × load)`. Exported as `quiver_health_score` and in
 * /readyz for the autoscaler.
 */
export class HealthMonitor {
  private last: HealthReport;
  private lastCpu: number;
  private lastAt: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly targetMs: number;
  private readonly memoryLimit: number;
  private readonly cpuMicros: () => number;
  private readonly rssBytes: () => number;
  private readonly now: () => number;

  constructor(
    private readonly admission: Admission,
    private readonly options: HealthMonitorOptions = {},
  ) {
    this.targetMs = options.targetMs ?? 50;
    this.memoryLimit = options.memoryLimitBytes ?? cgroupMemoryLimit() ?? totalmem();
    this.cpuMicros = options.cpuMicros ?? (() => {
      const u = process.cpuUsage();
      return u.user + u.system;
    });
    this.rssBytes = options.rssBytes ?? (() => process.memoryUsage.rss());
    this.now = options.now ?? Date.now;
    this.lastCpu = this.cpuMicros();
    this.lastAt = this.now();
    this.last = { score: 100, factors: { active: 0, queue: 0, cpu: 0, memory: 0, errors: 0, latency: 0 }, inFlight: 0, p99Ms: 0 };
  }

  get report(): HealthReport {
    return this.last;
  }

  /** Takes one sample now (the timer calls this; tests call it directly). */
  sample(): HealthReport {
    const a = this.admission.snapshot();
    const interval = this.admission.takeInterval();
    const now = this.now();
    const cpu = this.cpuMicros();
    const wallMs = Math.max(1, now - this.lastAt);
    const cpuLoad = (cpu - this.lastCpu) / 1000 / wallMs;
    this.lastCpu = cpu;
    this.lastAt = now;
    const requests = interval.completed + interval.shed;
    const factors: HealthFactors = {
      active: clamp01(a.limit > 0 ? a.inFlight / a.limit : 0),
      queue: clamp01(a.queueCapacity > 0 ? a.queued / a.queueCapacity : 0),
      cpu: clamp01(cpuLoad),
      memory: clamp01(this.rssBytes() / this.memoryLimit),
      errors: clamp01(requests > 0 ? (interval.failed + interval.shed) / requests : 0),
      latency: clamp01(interval.p99Ms / (2 * this.targetMs)),
    };
    let load = 0;
    for (const k of Object.keys(WEIGHTS) as (keyof HealthFactors)[]) load += WEIGHTS[k] * factors[k];
    const round = (v: number) => Math.round(v * 1000) / 1000;
    this.last = {
      score: Math.round(100 * (1 - load)),
      factors: Object.fromEntries(Object.entries(factors).map(([k, v]) => [k, round(v)])) as unknown as HealthFactors,
      inFlight: a.inFlight,
      p99Ms: interval.p99Ms,
    };
    return this.last;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
