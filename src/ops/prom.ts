import { createRequire } from "node:module";
import type * as Prom from "prom-client";

/**
 * The parts of prom-client Quiver uses, loaded from their own modules
 * instead of the package's index. The index also loads the Pushgateway
 * (node:http, node:https, node:url), Summary (tdigest, bintrees) and the
 * cluster aggregator: ~2.5k code cells of ~4.2k that nothing here calls.
 * Every young collection walks every code cell the process holds (see
 * src/app.ts on the gRPC edge), so code loaded and never run still costs
 * at each collection. Types come from the package's own typings; the
 * modules are the ones its index re-exports (prom-client 15:
 * `exports.Registry = require('./lib/registry')`, and so on).
 */
const load = createRequire(import.meta.url);

export const Registry: typeof Prom.Registry = load("prom-client/lib/registry");
export type Registry<T extends Prom.RegistryContentType = Prom.PrometheusContentType> = Prom.Registry<T>;
export const Counter: typeof Prom.Counter = load("prom-client/lib/counter");
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge: typeof Prom.Gauge = load("prom-client/lib/gauge");
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram: typeof Prom.Histogram = load("prom-client/lib/histogram");
export type Histogram<T extends string = string> = Prom.Histogram<T>;

/**
 * prom-client's default metrics (its `collectDefaultMetrics`), module by
 * module, less two:
 * - CPU time (`process_cpu_*_seconds_total`) is registered here: prom-client's
 *   module loads @opentelemetry/api (~700 code cells) for exemplars, which
 *   Quiver does not enable. Same names, help and values.
 * - The V8 heap spaces (`nodejs_heap_space_size_*_bytes`) are left out:
 *   prom-client fills them from v8.getHeapSpaceStatistics(), which Bun answers
 *   by walking the whole heap (12 ms a scrape with 300k live objects, growing
 *   with the heap, all of it a stall of the event loop that serves lookups and,
 *   under load, refused requests and blamed shard timeouts). JavaScriptCore has
 *   no V8 heap spaces anyway; nodejs_heap_size_total_bytes and _used_bytes
 *   (process.memoryUsage) stay.
 */
const DEFAULT_METRIC_MODULES = [
  "processStartTime",
  "osMemoryHeap",
  "processOpenFileDescriptors",
  "processMaxFileDescriptors",
  "eventLoopLag",
  // prom-client registers it only where the runtime has process.getActiveResourcesInfo.
  ...(typeof (process as { getActiveResourcesInfo?: unknown }).getActiveResourcesInfo === "function" ? ["processResources"] : []),
  "processHandles",
  "processRequests",
  "heapSizeAndUsed",
  "version",
  "gc",
] as const;

/** One of prom-client's default-metric modules (lib/metrics/*): registers its metrics on the registry. */
type DefaultMetric = (register: Registry, config: { eventLoopMonitoringPrecision: number }) => void;

/** Registers the default process metrics on `register` (see DEFAULT_METRIC_MODULES for what differs from prom-client's set). */
export function registerDefaultMetrics(register: Registry): void {
  registerProcessCpu(register);
  // prom-client's own default precision for the event-loop delay histogram (ms).
  const config = { eventLoopMonitoringPrecision: 10 };
  for (const name of DEFAULT_METRIC_MODULES) (load(`prom-client/lib/metrics/${name}`) as DefaultMetric)(register, config);
}

/** Process CPU time as prom-client reports it: user, system and their sum, in seconds, brought up to date at each scrape. */
function registerProcessCpu(register: Registry): void {
  let last = process.cpuUsage();
  const registers = [register];
  // The first counter's collect (run by each scrape before any of the three is read) brings all three up to date, as prom-client's does.
  const user: Counter = new Counter({
    name: "process_cpu_user_seconds_total",
    help: "Total user CPU time spent in seconds.",
    registers,
    collect() {
      const now = process.cpuUsage();
      const userMicros = now.user - last.user;
      const systemMicros = now.system - last.system;
      last = now;
      user.inc(userMicros / 1e6);
      system.inc(systemMicros / 1e6);
      total.inc((userMicros + systemMicros) / 1e6);
    },
  });
  const system: Counter = new Counter({ name: "process_cpu_system_seconds_total", help: "Total system CPU time spent in seconds.", registers });
  const total: Counter = new Counter({ name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", registers });
}

export type { MetricObjectWithValues, MetricType, MetricValue, MetricValueWithName } from "prom-client";
