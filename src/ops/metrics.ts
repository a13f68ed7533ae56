import * as prom from "./prom.ts";

/**
 * Prometheus metrics on prom-client: its Registry renders the exposition
 * format and carries the default process metrics (event-loop lag, heap, CPU,
 * RSS, handles). The hot path keeps plain handles: `counter.labels(...)` is
 * resolved once to a handle whose `inc` is one add, and prom-client folds the
 * handles in when /metrics is scraped. Measured with Bun 1.4 (inc + observe on
 * one series, 2 M iterations): prom-client's own label handles ~400 ns (they
 * hash the label object on every call), these ~5 ns.
 */

/** Latency buckets in seconds: 50 µs .. 10 s, dense below a millisecond where Quiver lives. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

type Labels = Record<string, string>;

/** prom-client's MetricType is a type-only (numeric) enum in its typings; at run time the type is this string. */
const HISTOGRAM = "histogram" as unknown as prom.MetricType;
const GAUGE = "gauge" as unknown as prom.MetricType;
/** prom-client's typings want `collect` on exported metric objects; its own `get()` leaves it out. */
const NOTHING_TO_COLLECT = (): void => {};

function labelObject(names: readonly string[], values: readonly string[]): Labels {
  if (values.length !== names.length) throw new Error(`metric labels: expected ${names.length} values (${names.join(", ")}), got ${values.length}`);
  const out: Labels = {};
  names.forEach((n, i) => {
    out[n] = values[i]!;
  });
  return out;
}

export class CounterHandle {
  value = 0;
  /** Part of `value` already handed to prom-client. */
  reported = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

/** A labelled counter; prom-client's Counter holds the exported totals. */
export class Counter {
  private readonly series = new Map<string, { labels: Labels; handle: CounterHandle }>();
  readonly prom: prom.Counter<string>;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: prom.Registry,
  ) {
    const series = this.series;
    this.prom = new prom.Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      collect() {
        for (const { labels, handle } of series.values()) {
          const delta = handle.value - handle.reported;
          handle.reported = handle.value;
          // inc(labels, 0) still creates the series, so a resolved handle is exported from the start.
          this.inc(labels, delta);
        }
      },
    });
  }

  labels(...values: string[]): CounterHandle {
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { labels: labelObject(this.labelNames, values), handle: new CounterHandle() };
      this.series.set(key, s);
    }
    return s.handle;
  }

  /** Every series' value now (MetricsRegistry.mark). */
  mark(): Map<string, number> {
    return new Map([...this.series].map(([key, s]) => [key, s.handle.value]));
  }

  /** Puts every series back to its marked value; series made since read 0 (MetricsRegistry.rewind). */
  rewind(mark: ReadonlyMap<string, number>): void {
    for (const [key, { handle }] of this.series) {
      handle.value = mark.get(key) ?? 0;
      // What prom-client already holds cannot go back; nothing was scraped in between when rewind is used as meant.
      handle.reported = Math.min(handle.reported, handle.value);
    }
  }
}

export class HistogramHandle {
  /** Per-bucket (not cumulative) counts; the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/**
 * prom-client's Histogram with its values read from hot-path handles: only
 * the export (`get`) is replaced, in prom-client's own MetricObject shape,
 * so the Registry renders it like any histogram.
 */
class HandleHistogram extends prom.Histogram<string> {
  readonly series = new Map<string, { labels: Labels; handle: HistogramHandle }>();

  override async get(): Promise<prom.MetricObjectWithValues<prom.MetricValueWithName<string>>> {
    const bounds = this.bucketBounds;
    const name = this.metricName;
    const values: prom.MetricValueWithName<string>[] = [];
    for (const { labels, handle } of this.series.values()) {
      let cumulative = 0;
      bounds.forEach((le, i) => {
        cumulative += handle.counts[i]!;
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: handle.count });
      values.push({ metricName: `${name}_sum`, labels, value: handle.sum });
      values.push({ metricName: `${name}_count`, labels, value: handle.count });
    }
    return { name, help: this.helpText, type: HISTOGRAM, values, aggregator: "sum", collect: NOTHING_TO_COLLECT };
  }

  /** The Registry renders through this one when present (not in prom-client's typings). */
  async getForPromString(): Promise<prom.MetricObjectWithValues<prom.MetricValueWithName<string>>> {
    return this.get();
  }

  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    labelNames: readonly string[],
    private readonly bucketBounds: readonly number[],
    registry: prom.Registry,
  ) {
    super({ name: metricName, help: helpText, labelNames: [...labelNames], buckets: [...bucketBounds], registers: [registry] });
  }
}

export class Histogram {
  private readonly metric: HandleHistogram;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    registry: prom.Registry,
  ) {
    this.metric = new HandleHistogram(name, help, labelNames, buckets, registry);
  }

  labels(...values: string[]): HistogramHandle {
    const key = values.join("\u0000");
    let s = this.metric.series.get(key);
    if (!s) {
      s = { labels: labelObject(this.labelNames, values), handle: new HistogramHandle(this.buckets) };
      this.metric.series.set(key, s);
    }
    return s.handle;
  }

  /** Every series' buckets, sum and count now (MetricsRegistry.mark). */
  mark(): Map<string, { counts: Float64Array; sum: number; count: number }> {
    return new Map([...this.metric.series].map(([key, s]) => [key, { counts: s.handle.counts.slice(), sum: s.handle.sum, count: s.handle.count }]));
  }

  /** Puts every series back to its marked state; series made since read empty (MetricsRegistry.rewind). */
  rewind(mark: ReadonlyMap<string, { counts: Float64Array; sum: number; count: number }>): void {
    for (const [key, { handle }] of this.metric.series) {
      const m = mark.get(key);
      if (m === undefined) handle.counts.fill(0);
      else handle.counts.set(m.counts);
      handle.sum = m?.sum ?? 0;
      handle.count = m?.count ?? 0;
    }
  }
}

/** A gauge sample produced at scrape time. */
export interface GaugeSample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A gauge whose samples come from a function at scrape time (label names may vary per sample). */
class CollectedGauge extends prom.Gauge<string> {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly samples: () => readonly GaugeSample[],
    registry: prom.Registry,
  ) {
    super({ name: metricName, help: helpText, registers: [registry] });
  }

  override async get(): Promise<prom.MetricObjectWithValues<prom.MetricValue<string>>> {
    const values = this.samples().map((s) => ({ labels: { ...(s.labels ?? {}) }, value: s.value }));
    return { name: this.metricName, help: this.helpText, type: GAUGE, values, aggregator: "sum", collect: NOTHING_TO_COLLECT };
  }
}

export interface MetricsOptions {
  /** Register prom-client's default process metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/** Every counter's and histogram's series as `MetricsRegistry.mark` found them. */
export interface MetricsMark {
  readonly counters: readonly ReadonlyMap<string, number>[];
  readonly histograms: readonly ReadonlyMap<string, { counts: Float64Array; sum: number; count: number }>[];
}

/** The one registry of a Quiver process; every module registers through it. */
export class MetricsRegistry {
  private readonly counters: Counter[] = [];
  private readonly histograms: Histogram[] = [];
  /** prom-client's registry, for code that uses prom-client metric types directly (rendering, default metrics). */
  readonly prom = new prom.Registry();
  readonly contentType: string = prom.Registry.PROMETHEUS_CONTENT_TYPE;

  constructor(options: MetricsOptions = {}) {
    if (options.defaultMetrics !== false) {
      prom.registerDefaultMetrics(this.prom);
    }
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const c = new Counter(name, help, labelNames, this.prom);
    this.counters.push(c);
    return c;
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = LATENCY_BUCKETS): Histogram {
    const h = new Histogram(name, help, labelNames, buckets, this.prom);
    this.histograms.push(h);
    return h;
  }

  /**
   * Where every counter and histogram stands now, for `rewind`: work the
   * process does for itself (the start-up warm-up's lookups) can be taken back
   * out of what it exports. Gauges are computed at scrape time and need none.
   */
  mark(): MetricsMark {
    return { counters: this.counters.map((c) => c.mark()), histograms: this.histograms.map((h) => h.mark()) };
  }

  /** Puts every counter and histogram back where `mark` found it (series made since read 0); meant for before anything scrapes. */
  rewind(mark: MetricsMark): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i]!.rewind(mark.counters[i] ?? new Map());
    for (let i = 0; i < this.histograms.length; i++) this.histograms[i]!.rewind(mark.histograms[i] ?? new Map());
  }

  /** A gauge whose samples are computed when /metrics is scraped. */
  gauge(name: string, help: string, collect: () => readonly GaugeSample[]): void {
    new CollectedGauge(name, help, collect, this.prom);
  }

  /** Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.prom.metrics();
  }
}
