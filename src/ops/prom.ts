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
export const collectDefaultMetrics: typeof Prom.collectDefaultMetrics = load("prom-client/lib/defaultMetrics");

export type { MetricObjectWithValues, MetricType, MetricValue, MetricValueWithName } from "prom-client";
