import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import type { LoadOutcome } from "../loadtest/engine/run-load.ts";
import { Recorder } from "../loadtest/engine/recorder.ts";
import { findMax } from "../loadtest/find-max.ts";
import { hgrmText } from "../loadtest/output/hgrm.ts";
import { buildResult, errorRate } from "../loadtest/output/result.ts";
import type { RunResult } from "../loadtest/output/result.ts";
import { formatSummary } from "../loadtest/output/table.ts";
import { htmlReport } from "../loadtest/report/html-report.ts";
import { asRun } from "../loadtest/report/load-runs.ts";
import { latencySvg, nines } from "../loadtest/report/svg-plot.ts";
import type { RunOptions } from "../loadtest/run.ts";

const root = resolve(import.meta.dir, "..");

/** A result whose latencies are exactly 1, 2, ..., 1000 µs (plus two errors). */
function syntheticResult(label: string, scale = 1): RunResult {
  const rec = new Recorder(["lookup", "push"]);
  for (let i = 1; i <= 1000; i++) rec.response(i % 2, 200, (i * scale) / 1000, (i * scale) / 2000, 0);
  rec.response(0, 503, 0.5, 0.4, 0);
  rec.failure("timeout");
  const ownStalls = { everyMs: 2, thresholdMs: 5, count: 0, maxMs: 0, totalMs: 0, complete: true };
  const outcome: LoadOutcome = { recorder: rec, sent: 1002, unsent: 0, measuredMs: 1000, achievedRate: 1002, cpu: { userMs: 100, systemMs: 50, utilization: 0.15 }, connectFailures: 0, gcPace: { everyMs: 10, collections: 100, meanPauseMs: 0.3, maxPauseMs: 1.2 }, ownStalls };
  return buildResult(
    { label, scenario: "mixed", mode: "open", target: "http://127.0.0.1:1", startedAt: new Date(0), targetRate: 1000, options: { connections: 8, duration: "1s", warmup: "0s", keys: "uniform" } },
    outcome,
  );
}

describe("results", () => {
  const r = syntheticResult("run <A>");

  test("percentiles in ms from the HDR histogram", () => {
    expect(r.latencyMs.count).toBe(1001);
    expect(r.latencyMs.p50).toBeCloseTo(0.5, 2);
    expect(r.latencyMs.p99).toBeCloseTo(0.99, 2);
    expect(r.latencyMs.max).toBeCloseTo(1, 2);
    expect(r.serviceTimeMs.p50).toBeCloseTo(0.25, 2);
    expect(Object.keys(r.byTag).sort()).toEqual(["lookup", "push"]);
  });

  test("errors by kind, with HTTP statuses named", () => {
    expect(r.errorsByKind).toEqual({ http_503: 1, timeout: 1 });
    // By status, from the intended send and from the actual send (a refusal's own round trip).
    expect(r.latencyByStatusMs["200"]?.p50).toBeCloseTo(0.5, 2);
    expect(r.serviceByStatusMs["200"]?.p50).toBeCloseTo(0.25, 2);
    expect(r.serviceByStatusMs["503"]?.count).toBe(1);
    expect(r.serviceByStatusMs["503"]?.max).toBeCloseTo(0.4, 2);
    expect(r.statusCounts).toEqual({ "200": 1000, "503": 1 });
    expect(errorRate(r)).toBeCloseTo(2 / 1002, 6);
  });

  test("the distribution rises monotonically and ends at the max", () => {
    const d = r.distribution;
    for (let i = 1; i < d.length; i++) {
      expect((d[i]?.[0] ?? 0) >= (d[i - 1]?.[0] ?? 0)).toBe(true);
      expect((d[i]?.[1] ?? 0) >= (d[i - 1]?.[1] ?? 0)).toBe(true);
    }
    expect(d[d.length - 1]).toEqual([100, r.latencyMs.max]);
  });

  test("hgrm text is HdrHistogram's percentile distribution, in ms", () => {
    const text = hgrmText(r.histogram);
    expect(text).toContain("Value     Percentile TotalCount 1/(1-Percentile)");
    expect(text).toMatch(/#\[Mean\s+=\s+0\.5/);
    expect(text).toMatch(/#\[Max\s+=\s+1\.0/);
    expect(text).toContain("Total count    =         1001");
  });

  test("the summary table shows percentiles, rate and errors", () => {
    const s = formatSummary(r);
    expect(s).toContain("p99.9");
    expect(s).toContain("latency (CO)");
    expect(s).toContain("achieved 1,002 req/s (target 1,000)");
    expect(s).toContain("http_503: 1, timeout: 1");
  });
});

describe("report", () => {
  const a = syntheticResult("fast <run>");
  const b = syntheticResult("slow & steady", 3);

  test("nines: 90% is 1, 99% is 2, 99.9% is 3", () => {
    expect(nines(90)).toBeCloseTo(1, 9);
    expect(nines(99)).toBeCloseTo(2, 9);
    expect(nines(99.9)).toBeCloseTo(3, 9);
  });

  test("the SVG has a line per run, nines ticks, escaped labels and the SLO", () => {
    const svg = latencySvg([{ label: "fast <run>", result: a }, { label: "slow & steady", result: b }], { title: "t", sloMs: 2 });
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(svg.match(/<polyline /g)?.length).toBe(2);
    for (const tick of ["90%", "99%", "99.9%"]) expect(svg).toContain(`>${tick}</text>`);
    expect(svg).toContain("fast &lt;run&gt;");
    expect(svg).toContain("slow &amp; steady");
    expect(svg).toContain("SLO 2 ms");
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  test("the HTML embeds the plot and a row per run", () => {
    const html = htmlReport([{ label: "A", result: a }, { label: "B", result: b }], "<svg></svg>", "Title");
    expect(html).toContain("<svg></svg>");
    expect(html.match(/<tr><td>/g)?.length).toBe(2);
  });

  test("find-max files contribute their best step; other JSON is refused", () => {
    expect(asRun({ tool: "quiver-loadtest", kind: "find-max", best: a }, "f.json")).toBe(a);
    expect(() => asRun({ tool: "quiver-loadtest", kind: "find-max", best: null }, "f.json")).toThrow("no rate within the SLO");
    expect(() => asRun({ hello: 1 }, "x.json")).toThrow("not a quiver-loadtest result");
  });

  test("loadtest:report writes the HTML and the SVG next to it", async () => {
    const dir = mkdtempSync(`${tmpdir()}/qv-report-`);
    await Bun.write(`${dir}/a.json`, JSON.stringify(a));
    await Bun.write(`${dir}/b.json`, JSON.stringify(b));
    const p = Bun.spawnSync([process.execPath, "loadtest/report/cli.ts", `${dir}/a.json`, `${dir}/b.json`, "-o", `${dir}/latency.html`], { cwd: root, stderr: "pipe", stdout: "pipe" });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    expect(await Bun.file(`${dir}/latency.html`).text()).toContain("<polyline");
    expect(await Bun.file(`${dir}/latency.svg`).text()).toContain("fast &lt;run&gt;");
    // An SLO that is not a positive number is refused, naming the flag (it drew NaN coordinates and exited 0).
    for (const bad of ["abc", "-5", "0"]) {
      const q = Bun.spawnSync([process.execPath, "loadtest/report/cli.ts", `${dir}/a.json`, "-o", `${dir}/bad.html`, `--slo-ms=${bad}`], { cwd: root, stderr: "pipe", stdout: "pipe" });
      expect(q.exitCode).toBe(2);
      expect(q.stderr.toString()).toContain("--slo-ms: expected a number of milliseconds above 0");
    }
  });
});

describe("find-max", () => {
  /**
   * A modelled server instead of a real one: the search is judged on its
   * logic, not on how loaded the machine running the test is (the real
   * version failed once with 0 when a busy machine broke the first step).
   * Up to `capacity` req/s it answers in 2 ms; above, the queue grows and p99
   * is 50 ms. `flaky` steps fail once as if outside load had hit them.
   */
  function modelServer(capacity: number, flaky: ReadonlySet<number> = new Set()) {
    const calls: number[] = [];
    const run = async (o: RunOptions): Promise<RunResult> => {
      const rate = o.rate ?? 0;
      calls.push(rate);
      const burst = flaky.has(rate) && calls.filter((r) => r === rate).length === 1;
      const latencyMs = rate <= capacity && !burst ? 2 : 50;
      const rec = new Recorder(["get"]);
      const n = Math.max(10, Math.round((rate * o.durationMs) / 1000));
      for (let i = 0; i < n; i++) rec.response(0, 200, latencyMs, latencyMs, 0);
      const outcome: LoadOutcome = { recorder: rec, sent: n, unsent: 0, measuredMs: o.durationMs, achievedRate: rate, cpu: { userMs: 1, systemMs: 1, utilization: 0.01 }, connectFailures: 0, gcPace: undefined, ownStalls: { everyMs: 2, thresholdMs: 5, count: 0, maxMs: 0, totalMs: 0, complete: true } };
      return buildResult({ label: o.label ?? "", scenario: o.scenario, mode: "open", target: o.target.origin, startedAt: new Date(0), targetRate: rate, options: { connections: o.connections, duration: "1s", warmup: "0s", keys: "uniform" } }, outcome);
    };
    return { run, calls };
  }

  const base: RunOptions = {
    scenario: "get",
    target: new URL("http://127.0.0.1:1"),
    mode: "open",
    rate: 1,
    connections: 32,
    durationMs: 300,
    warmupMs: 0,
    timeoutMs: 1000,
    gcPaceMs: 0,
    keys: "uniform",
    entities: 10,
    seed: "1",
    batch: undefined,
    writeRatio: 0,
    view: "driver_hourly_stats",
    features: undefined,
    path: "/",
    maxRequests: 100_000,
    label: undefined,
  };
  const settings = { sloMs: 8, maxErrorRate: 0.001, startRate: 200, stepFactor: 2, stepDurationMs: 300, maxRate: 10_000, refine: 3, retries: 0 };

  test("steps up until the SLO breaks, bisects, and reports the highest rate that held", async () => {
    const server = modelServer(1000);
    const r = await findMax(base, settings, undefined, undefined, server.run, 0);
    // 200, 400, 800 hold; 1600 breaks; bisect 1200 (breaks), 1000 (holds), 1100 (breaks).
    expect(server.calls).toEqual([200, 400, 800, 1600, 1200, 1000, 1100]);
    expect(r.maxRate).toBe(1000);
    expect(r.steps.filter((s) => !s.held).map((s) => s.rate)).toEqual([1600, 1200, 1100]);
    expect(r.steps.find((s) => s.rate === 1600)?.why).toMatch(/^p99 50(\.\d+)? ms > 8 ms$/);
    expect(r.best?.latencyMs.p99).toBeCloseTo(2, 1);
  });

  test("a step broken once by outside load is re-run before it ends the search (--retries)", async () => {
    const server = modelServer(1000, new Set([400]));
    const r = await findMax(base, { ...settings, refine: 0, retries: 1 }, undefined, undefined, server.run, 0);
    expect(server.calls).toEqual([200, 400, 400, 800, 1600, 1600]);
    expect(r.maxRate).toBe(800);
    const without = await findMax(base, { ...settings, refine: 0, retries: 0 }, undefined, undefined, modelServer(1000, new Set([400])).run, 0);
    expect(without.maxRate).toBe(200);
  });

  test("every step is at least one request a second above the last; a start that rounds to 0 or above the maximum is refused", async () => {
    // 1 × 1.4 rounded back to 1, for ever (0.4 to 0, which sent nothing and was judged held).
    const server = modelServer(3);
    const r = await findMax(base, { ...settings, startRate: 1, stepFactor: 1.4, refine: 0 }, undefined, undefined, server.run, 0);
    expect(server.calls).toEqual([1, 2, 3, 4]);
    expect(r.maxRate).toBe(3);
    await expect(findMax(base, { ...settings, startRate: 0.4 }, undefined, undefined, server.run, 0)).rejects.toThrow("--start-rate: must be at least 1");
    await expect(findMax(base, { ...settings, startRate: 20_000 }, undefined, undefined, server.run, 0)).rejects.toThrow("--start-rate 20000 is above --max-rate 10000");
  });

  test("a step past --max-rate runs at it, and a search every step of which held says the cap ended it", async () => {
    // 200 and 300 held under a cap of 400; the next step (450) was over it, and 400 was never tried.
    const server = modelServer(1000);
    const r = await findMax(base, { ...settings, stepFactor: 1.5, maxRate: 400, refine: 0 }, undefined, undefined, server.run, 0);
    expect(server.calls).toEqual([200, 300, 400]);
    expect([r.maxRate, r.endedBy]).toEqual([400, "max-rate"]);
    const broken = await findMax(base, { ...settings, refine: 0 }, undefined, undefined, modelServer(1000).run, 0);
    expect([broken.maxRate, broken.endedBy]).toEqual([800, "slo"]);
  });

  test("reports 0 and no best run when even the first step breaks", async () => {
    const r = await findMax(base, settings, undefined, undefined, modelServer(10).run, 0);
    expect(r.maxRate).toBe(0);
    expect(r.best).toBeNull();
  });
});
