/**
 * Minimal Prometheus metrics built for the hot path: a labelled series is
 * resolved once to a handle (`counter.labels(...)`) and then costs one add.
 * Scrape-time collectors let other modules (shards, caches) publish gauges
 * without the request path touching them.
 */

type LabelValues = readonly string[];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: LabelValues, extra = ""): string {
  if (names.length === 0 && extra === "") return "";
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra) parts.push(extra);
  return `{${parts.join(",")}}`;
}

interface Metric {
  render(out: string[]): void;
}

export class CounterHandle {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter implements Metric {
  private readonly series = new Map<string, { values: LabelValues; handle: CounterHandle }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}

  labels(...values: string[]): CounterHandle {
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { values, handle: new CounterHandle() };
      this.series.set(key, s);
    }
    return s.handle;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const s of this.series.values()) out.push(`${this.name}${labelText(this.labelNames, s.values)} ${s.handle.value}`);
  }
}

/** Latency buckets in seconds: 50 µs .. 10 s, dense below a millisecond where Quiver lives. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export class HistogramHandle {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { values: LabelValues; handle: HistogramHandle }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {}

  labels(...values: string[]): HistogramHandle {
    const key = values.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { values, handle: new HistogramHandle(this.buckets) };
      this.series.set(key, s);
    }
    return s.handle;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const { values, handle } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += handle.counts[i]!;
        out.push(`${this.name}_bucket${labelText(this.labelNames, values, `le="${le}"`)} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${handle.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${handle.sum}`);
      out.push(`${this.name}_count${labelText(this.labelNames, values)} ${handle.count}`);
    }
  }
}

/** A gauge sample produced at scrape time. */
export interface GaugeSample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: { name: string; help: string; collect: () => readonly GaugeSample[] }[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const c = new Counter(name, help, labelNames);
    this.metrics.push(c);
    return c;
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    const h = new Histogram(name, help, labelNames, buckets);
    this.metrics.push(h);
    return h;
  }

  /** A gauge whose samples are computed when /metrics is scraped. */
  gauge(name: string, help: string, collect: () => readonly GaugeSample[]): void {
    this.collectors.push({ name, help, collect });
  }

  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    for (const g of this.collectors) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const s of g.collect()) {
        const names = Object.keys(s.labels ?? {});
        out.push(`${g.name}${labelText(names, names.map((n) => s.labels![n]!))} ${s.value}`);
      }
    }
    return `${out.join("\n")}\n`;
  }
}
