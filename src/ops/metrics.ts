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
const COUNTER = "counter" as unknown as prom.MetricType;
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
  inc(by = 1): void {
    this.value += by;
  }
}

/**
 * prom-client's Counter with its values read from hot-path handles, as
 * HandleHistogram's are: `get` in prom-client's MetricObject shape,
 * `exportText` the text its Registry would render from it. A counter
 * without labels has its one series from the start, as prom-client's own.
 */
class HandleCounter extends prom.Counter<string> implements TextExport {
  readonly series = new Map<string, { labels: Labels; handle: CounterHandle; text?: string }>();

  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    labelNames: readonly string[],
    registry: prom.Registry,
  ) {
    super({ name: metricName, help: helpText, labelNames: [...labelNames], registers: [registry] });
  }

  override async get(): Promise<prom.MetricObjectWithValues<prom.MetricValue<string>>> {
    const values = [...this.series.values()].map(({ labels, handle }) => ({ labels, value: handle.value }));
    return { name: this.metricName, help: this.helpText, type: COUNTER, values, aggregator: "sum", collect: NOTHING_TO_COLLECT };
  }

  exportText(): string {
    const name = this.metricName;
    let out = `# HELP ${name} ${escapeHelp(this.helpText)}\n# TYPE ${name} counter`;
    for (const s of this.series.values()) {
      s.text ??= `${name}${labelText(s.labels)} `;
      out += `\n${s.text}${sampleText(s.handle.value)}`;
    }
    return out;
  }
}

/** A labelled counter; its series are exported from their handles (HandleCounter). */
/** Series a rewind leaves alone, by metric name and labels. */
export type RewindKeep = (metric: string, labels: Readonly<Record<string, string>>) => boolean;

export class Counter {
  /** The exported metric (MetricsRegistry renders it through its TextExport). */
  readonly metric: HandleCounter;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: prom.Registry,
  ) {
    this.metric = new HandleCounter(name, help, labelNames, registry);
    if (labelNames.length === 0) this.labels();
  }

  labels(...values: string[]): CounterHandle {
    const key = values.join("\u0000");
    let s = this.metric.series.get(key);
    if (!s) {
      s = { labels: labelObject(this.labelNames, values), handle: new CounterHandle() };
      this.metric.series.set(key, s);
    }
    return s.handle;
  }

  /** Every series' value now (MetricsRegistry.mark). */
  mark(): Map<string, number> {
    return new Map([...this.metric.series].map(([key, s]) => [key, s.handle.value]));
  }

  /** Puts every series back to its marked value; series made since read 0 (MetricsRegistry.rewind). `keep` spares series. */
  rewind(mark: ReadonlyMap<string, number>, keep?: RewindKeep): void {
    for (const [key, { labels, handle }] of this.metric.series) {
      if (keep?.(this.name, labels)) continue;
      handle.value = mark.get(key) ?? 0;
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
 * A metric that writes its own exposition text for MetricsRegistry.render:
 * byte for byte what prom-client's Registry writes for it, without an
 * object per line.
 */
interface TextExport {
  exportText(): string;
}

/** prom-client's escaping of HELP text (registry.js `escapeString`). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** prom-client's escaping of a label value (registry.js `escapeLabelValue`). */
function escapeLabel(value: string): string {
  return escapeHelp(value).replace(/"/g, '\\"');
}

/** prom-client's spelling of a sample's value (util.js `getValueAsString`). */
function sampleText(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return `${v}`;
}

/** One histogram series' line heads, built once: `name_bucket{labels,le="…"} ` per bound and +Inf, then `_sum` and `_count`. */
interface SeriesText {
  readonly buckets: readonly string[];
  readonly sum: string;
  readonly count: string;
}

/** A series' labels as prom-client writes them: `{a="x",b="y"}`, or nothing without labels. */
function labelText(labels: Labels): string {
  return braced(labelPairs(labels));
}

/** Label pairs in braces, or nothing when there are none. */
function braced(pairs: readonly string[]): string {
  return pairs.length > 0 ? `{${pairs.join(",")}}` : "";
}

function labelPairs(labels: Labels): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
}

function seriesText(name: string, labels: Labels, bounds: readonly number[]): SeriesText {
  const pairs = labelPairs(labels);
  const own = braced(pairs);
  const bucket = (le: string) => `${name}_bucket{${[...pairs, `le="${le}"`].join(",")}} `;
  return { buckets: [...bounds.map((le) => bucket(`${le}`)), bucket("+Inf")], sum: `${name}_sum${own} `, count: `${name}_count${own} ` };
}

/**
 * prom-client's Histogram with its values read from hot-path handles: only
 * the export is replaced: `get`, in prom-client's own MetricObject shape (for
 * JSON and anything else that reads it), and `exportText`, the text the
 * Registry would render from it.
 *
 * prom-client renders each sample from an object ({...labels, le}) through
 * Object.entries, three regular-expression escapes and a join: for the HTTP
 * histogram's 14 series x 20 lines that was 2.2 ms of a 7.4 ms scrape of a
 * fresh server (12-06, in-process, scrapes 200 ms apart: code this rarely
 * run is never optimised), and a scrape holds the event loop for its whole
 * length. The line heads are built once per series here.
 */
class HandleHistogram extends prom.Histogram<string> implements TextExport {
  readonly series = new Map<string, { labels: Labels; handle: HistogramHandle; text?: SeriesText }>();

  exportText(): string {
    const name = this.metricName;
    let out = `# HELP ${name} ${escapeHelp(this.helpText)}\n# TYPE ${name} histogram`;
    for (const s of this.series.values()) {
      s.text ??= seriesText(name, s.labels, this.bucketBounds);
      const { buckets, sum, count } = s.text;
      const counts = s.handle.counts;
      let cumulative = 0;
      for (let i = 0; i < this.bucketBounds.length; i++) {
        cumulative += counts[i]!;
        out += `\n${buckets[i]}${sampleText(cumulative)}`;
      }
      out += `\n${buckets[this.bucketBounds.length]}${sampleText(s.handle.count)}\n${sum}${sampleText(s.handle.sum)}\n${count}${sampleText(s.handle.count)}`;
    }
    return out;
  }

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
  /** The exported metric (MetricsRegistry renders it through its TextExport). */
  readonly metric: HandleHistogram;
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

  /** Puts every series back to its marked state; series made since read empty (MetricsRegistry.rewind). `keep` spares series. */
  rewind(mark: ReadonlyMap<string, { counts: Float64Array; sum: number; count: number }>, keep?: RewindKeep): void {
    for (const [key, { labels, handle }] of this.metric.series) {
      if (keep?.(this.name, labels)) continue;
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
class CollectedGauge extends prom.Gauge<string> implements TextExport {
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

  exportText(): string {
    const name = this.metricName;
    let out = `# HELP ${name} ${escapeHelp(this.helpText)}\n# TYPE ${name} gauge`;
    for (const s of this.samples()) out += `\n${name}${s.labels === undefined ? "" : labelText(s.labels)} ${sampleText(s.value)}`;
    return out;
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

/**
 * The part of prom-client's Registry that renders one metric: public in its
 * JavaScript (`metrics()` is built on it), missing from its typings.
 */
interface PromTextRegistry {
  getMetricsAsArray(): readonly unknown[];
  getMetricsAsString(metric: unknown): Promise<string>;
}

/** The one registry of a Quiver process; every module registers through it. */
export class MetricsRegistry {
  private readonly counters: Counter[] = [];
  private readonly histograms: Histogram[] = [];
  /** Metrics of the registry that write their own text (HandleCounter, HandleHistogram, CollectedGauge), by the object the registry holds. */
  private readonly texts = new Map<unknown, TextExport>();
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
    this.texts.set(c.metric, c.metric);
    return c;
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = LATENCY_BUCKETS): Histogram {
    const h = new Histogram(name, help, labelNames, buckets, this.prom);
    this.histograms.push(h);
    this.texts.set(h.metric, h.metric);
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

  /**
   * Puts every counter and histogram back where `mark` found it (series made
   * since read 0); meant for before anything scrapes. Series `keep` names are
   * left as they are: what happened meanwhile that the process's own work did
   * not cause (streaming writers, shard failures) must not be taken back.
   */
  rewind(mark: MetricsMark, keep?: RewindKeep): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i]!.rewind(mark.counters[i] ?? new Map(), keep);
    for (let i = 0; i < this.histograms.length; i++) this.histograms[i]!.rewind(mark.histograms[i] ?? new Map(), keep);
  }

  /** A gauge whose samples are computed when /metrics is scraped. */
  gauge(name: string, help: string, collect: () => readonly GaugeSample[]): void {
    const g = new CollectedGauge(name, help, collect, this.prom);
    this.texts.set(g, g);
  }

  /**
   * Prometheus text exposition of every metric, as prom-client's
   * `Registry.metrics()` writes it (same order, same bytes): the metrics that
   * write their own text (TextExport) do, prom-client renders the rest.
   */
  async render(): Promise<string> {
    const registry = this.prom as unknown as PromTextRegistry;
    const metrics = registry.getMetricsAsArray();
    const parts = new Array<string>(metrics.length);
    for (let i = 0; i < metrics.length; i++) {
      const m = metrics[i]!;
      const own = this.texts.get(m);
      parts[i] = own !== undefined ? own.exportText() : await registry.getMetricsAsString(m);
    }
    return `${parts.join("\n\n")}\n`;
  }
}
