import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import * as promClient from "prom-client";
import { MetricsRegistry } from "./metrics.ts";
import { Registry, registerDefaultMetrics } from "./prom.ts";

/** Every non-comment line of the text exposition: `name{labels} value` (Prometheus parses NaN in any case). */
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|nan|[+-]inf)$/i;

describe("MetricsRegistry on prom-client", () => {
  test("counters export every resolved series, totals accumulate across scrapes", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    const c = m.counter("t_requests_total", "Requests.", ["route", "status"]);
    const ok = c.labels("/v1/lookup", "200");
    c.labels("/v1/push", "503");
    ok.inc();
    ok.inc(2);
    let text = await m.render();
    expect(text).toContain("# TYPE t_requests_total counter");
    expect(text).toContain('t_requests_total{route="/v1/lookup",status="200"} 3');
    expect(text).toContain('t_requests_total{route="/v1/push",status="503"} 0');
    ok.inc();
    text = await m.render();
    expect(text).toContain('t_requests_total{route="/v1/lookup",status="200"} 4');
  });

  test("histograms are cumulative with +Inf, sum and count", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    const h = m.histogram("t_latency_seconds", "Latency.", ["op"], [0.001, 0.01]).labels("get");
    h.observe(0.0005);
    h.observe(0.005);
    h.observe(0.5);
    const text = await m.render();
    expect(text).toContain("# TYPE t_latency_seconds histogram");
    expect(text).toContain('t_latency_seconds_bucket{op="get",le="0.001"} 1');
    expect(text).toContain('t_latency_seconds_bucket{op="get",le="0.01"} 2');
    expect(text).toContain('t_latency_seconds_bucket{op="get",le="+Inf"} 3');
    expect(text).toContain('t_latency_seconds_sum{op="get"} 0.5055');
    expect(text).toContain('t_latency_seconds_count{op="get"} 3');
  });

  test("histograms, counters and gauges write the text prom-client writes from their values, byte for byte (labels with quotes, backslashes, newlines; any values)", async () => {
    const labelValue = fc.string({ unit: fc.constantFrom("a", "z", "0", "/", '"', "\\", "\n", " ", "é", "{", "=") , maxLength: 8 });
    const value = fc.oneof(fc.double({ noNaN: false }), fc.constantFrom(0, 1e-9, 5e-5, 0.001, 1e21, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(labelValue, labelValue), { maxLength: 5 }), fc.array(fc.tuple(fc.nat(4), value), { maxLength: 30 }), fc.boolean(), async (series, observations, labelled) => {
        const m = new MetricsRegistry({ defaultMetrics: false });
        const h = labelled ? m.histogram("t_prop_seconds", "Help with \\ and\na newline.", ["route", "status"], [0.0001, 0.001, 0.5, 10]) : m.histogram("t_prop_seconds", "Plain.", [], [0.0001, 0.001]);
        const handles = labelled ? series.map(([a, b]) => h.labels(a, b)) : [h.labels()];
        for (const [i, v] of observations) handles[i % Math.max(1, handles.length)]?.observe(v);
        const c = labelled ? m.counter("t_prop_total", "Counted \\ here.", ["route", "status"]) : m.counter("t_prop_total", "Counted.");
        const counts = labelled ? series.map(([a, b]) => c.labels(a, b)) : [c.labels()];
        for (const [i, v] of observations) if (Number.isFinite(v)) counts[i % Math.max(1, counts.length)]?.inc(Math.abs(v));
        const registry = m.prom as unknown as { getMetricsAsString(metric: unknown): Promise<string> };
        expect(h.metric.exportText()).toBe(await registry.getMetricsAsString(h.metric));
        expect(c.metric.exportText()).toBe(await registry.getMetricsAsString(c.metric));
        m.gauge("t_prop_gauge", "Gauged \\ now.", () => observations.map(([i, v], j) => (j % 2 === 0 ? { value: v } : { labels: { route: series[i % Math.max(1, series.length)]?.[0] ?? "", n: String(i) }, value: v })));
        expect(await m.render()).toBe(await m.prom.metrics());
      }),
      { numRuns: 200 },
    );
  });

  test("a whole registry renders as prom-client renders it: counters, gauges, default metrics and histograms in registration order", async () => {
    const m = new MetricsRegistry();
    m.counter("t_total", "Counted.", ["kind"]).labels('a"b').inc(3);
    m.histogram("t_seconds", "Timed.", ["op"]).labels("get").observe(0.002);
    m.gauge("t_gauge", "Gauged.", () => [{ labels: { x: "1" }, value: 2 }]);
    m.histogram("t_empty_seconds", "Nothing observed yet.", ["op"]);
    const ours = await m.render();
    const theirs = await m.prom.metrics();
    // Process metrics move between two scrapes (CPU, event-loop lag): compare the lines' names and our metrics' lines.
    const names = (text: string) => text.split("\n").map((l) => l.replace(/[ {].*$/, ""));
    expect(names(ours)).toEqual(names(theirs));
    const own = (text: string) => text.split("\n").filter((l) => /^(# [A-Z]+ )?t_/.test(l));
    expect(own(ours)).toEqual(own(theirs));
    expect(ours.endsWith("\n")).toBe(true);
  });

  test("scrape-time gauges with per-sample labels, escaped", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    let n = 1;
    m.gauge("t_share", "Share.", () => [{ labels: { node: 'a"b' }, value: n }, { value: 2 }]);
    expect(await m.render()).toContain('t_share{node="a\\"b"} 1');
    n = 5;
    const text = await m.render();
    expect(text).toContain('t_share{node="a\\"b"} 5');
    expect(text).toContain("t_share 2");
  });

  test("default process metrics: event-loop lag, heap, RSS; every line is valid exposition", async () => {
    const m = new MetricsRegistry();
    m.counter("t_total", "T.", ["x"]).labels("y").inc();
    const text = await m.render();
    for (const name of ["nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    // Not the heap-space gauges: Bun fills them by walking the whole heap, a loop stall on every scrape.
    expect(text).not.toContain("nodejs_heap_space_size");
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      expect(line).toMatch(SAMPLE);
    }
  });

  test("the default metrics are prom-client's own set less the heap spaces, CPU time included and counting", async () => {
    const theirs = new promClient.Registry();
    promClient.collectDefaultMetrics({ register: theirs });
    const ours = new Registry();
    registerDefaultMetrics(ours);
    const names = (r: { getMetricsAsArray(): { name: string }[] }) => r.getMetricsAsArray().map((m) => m.name).sort();
    expect(names(ours)).toEqual(names(theirs).filter((n) => !n.startsWith("nodejs_heap_space_size_")));
    const cpu = async () => {
      const out = new Map<string, number>();
      for (const name of ["process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total"]) {
        const m = await ours.getSingleMetric(name)!.get();
        expect(m.help).toBe((await theirs.getSingleMetric(name)!.get()).help);
        out.set(name, m.values[0]!.value);
      }
      return out;
    };
    await cpu();
    let spin = 0;
    for (const until = performance.now() + 20; performance.now() < until; ) spin++;
    const after = await cpu();
    expect(spin).toBeGreaterThan(0);
    expect(after.get("process_cpu_user_seconds_total")! + after.get("process_cpu_system_seconds_total")!).toBeGreaterThan(0);
    expect(after.get("process_cpu_seconds_total")).toBeCloseTo(after.get("process_cpu_user_seconds_total")! + after.get("process_cpu_system_seconds_total")!, 9);
    theirs.clear();
  });

  test("a counter without labels exports its one series from the start, at 0, as prom-client's own does", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    m.counter("t_plain_total", "Plain.");
    expect(await m.render()).toBe("# HELP t_plain_total Plain.\n# TYPE t_plain_total counter\nt_plain_total 0\n");
    expect(await m.render()).toBe(await m.prom.metrics());
  });

  test("a handle resolved with the wrong number of labels is refused at resolution", () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    expect(() => m.counter("t_x_total", "X.", ["a", "b"]).labels("only-one")).toThrow(/expected 2 values/);
  });

  test("rewind takes back what was counted and observed since mark; new series read 0, later counting goes on", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    const c = m.counter("t_requests_total", "Requests.", ["route"]);
    const h = m.histogram("t_latency_seconds", "Latency.", ["route"], [0.001, 0.01]);
    c.labels("/a").inc(5);
    h.labels("/a").observe(0.0005);
    const mark = m.mark();
    c.labels("/a").inc(100);
    c.labels("/b").inc(7);
    h.labels("/a").observe(0.5);
    h.labels("/b").observe(0.005);
    m.rewind(mark);
    const lines = async () => new Set((await m.render()).split("\n"));
    const rewound = await lines();
    for (const line of ['t_requests_total{route="/a"} 5', 't_requests_total{route="/b"} 0', 't_latency_seconds_count{route="/a"} 1', 't_latency_seconds_bucket{route="/a",le="+Inf"} 1', 't_latency_seconds_sum{route="/a"} 0.0005', 't_latency_seconds_count{route="/b"} 0']) {
      expect(rewound).toContain(line);
    }
    c.labels("/a").inc();
    h.labels("/b").observe(0.005);
    const after = await lines();
    expect(after).toContain('t_requests_total{route="/a"} 6');
    expect(after).toContain('t_latency_seconds_bucket{route="/b",le="0.01"} 1');
  });

  test("rewind leaves the series `keep` names as they are (what the warm-up did not cause)", async () => {
    const m = new MetricsRegistry({ defaultMetrics: false });
    const ops = m.counter("t_store_ops_total", "Ops.", ["op"]);
    const events = m.counter("t_ingest_events_total", "Events.");
    const h = m.histogram("t_ingest_seconds", "Batch.", [], [0.01]);
    const mark = m.mark();
    ops.labels("get").inc(50);
    ops.labels("put").inc(3);
    events.labels().inc(30);
    h.labels().observe(0.001);
    m.rewind(mark, (metric, labels) => metric.startsWith("t_ingest_") || labels["op"] === "put");
    const text = new Set((await m.render()).split("\n"));
    for (const line of ['t_store_ops_total{op="get"} 0', 't_store_ops_total{op="put"} 3', "t_ingest_events_total 30", "t_ingest_seconds_count 1"]) expect(text).toContain(line);
  });
});
