import { afterAll, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { cpuBusyShare } from "../bench/lib/machine.ts";
import { memoryMb } from "../bench/lib/processes.ts";
import type { SuiteResult } from "../bench/lib/results.ts";
import { ratio, summaryMarkdown } from "../bench/lib/results.ts";
import { runWrk } from "../bench/lib/wrk.ts";
import { getScript, rotatingPostScript } from "../bench/lib/wrk-lua.ts";
import { singleLookupBody } from "../bench/suites/lookup-probe.ts";

const machine = { cpuModel: "cpu", cores: 2, memoryGb: 24, kernel: "Linux", bun: "1", loadAverage: [0.1, 0.2, 0.3], pinning: "server taskset -c 1, driver taskset -c 0", busyAtStart: 0.05 };

describe("bench results", () => {
  test("the summary has a table row per check with pass marks and ratios", () => {
    const r: SuiteResult = {
      suite: "lookup",
      title: "Lookup over HTTP",
      date: "2026-01-01T00:00:00.000Z",
      machine,
      checks: [
        { name: "throughput", unit: "req/s", baseline: 100_000, measured: 80_000, ratio: ratio(80_000, 100_000), target: ">= 0.75", pass: true },
        { name: "p99", unit: "ms", baseline: null, measured: 1.5, ratio: null, target: "<= 1 ms", pass: false },
        { name: "info", unit: "", baseline: null, measured: null, ratio: null, target: "info", pass: null },
      ],
      baseline: {},
      measured: {},
      targets: {},
      notes: ["a note"],
    };
    const md = summaryMarkdown([{ file: "lookup-http.json", result: r }]);
    expect(md).toContain("## Lookup over HTTP");
    expect(md).toContain("| throughput | 100,000 req/s | 80,000 req/s | 0.80 | >= 0.75 | ✅ |");
    expect(md).toContain("| p99 |  | 1.500 ms |  | <= 1 ms | ❌ |");
    expect(md).toContain("| info |  |  |  | info | – |");
    expect(md).toContain("CPU 5% busy at start");
    expect(md).toContain("- a note");
  });

  test("ratio is measured / baseline, null without both", () => {
    expect(ratio(3, 4)).toBe(0.75);
    expect(ratio(null, 4)).toBeNull();
    expect(ratio(3, 0)).toBeNull();
  });
});

describe("wrk scripts", () => {
  test("the rotating POST script splices a random id where the placeholder was", () => {
    const lua = rotatingPostScript({ path: "/v1/lookup", body: singleLookupBody("XKEYX"), placeholder: "XKEYX", firstId: 1001, entities: 1_000_000, seed: 1, contentType: "application/json" });
    expect(lua).toContain('local prefix = "{\\"features\\":[');
    expect(lua).toContain('local suffix = "}],\\"fillDefaults\\":true}"');
    expect(lua).toContain("prefix .. (first + math.random(0, n - 1)) .. suffix");
    expect(lua).not.toContain("XKEYX");
    expect(lua).toContain("WRK_JSON");
  });

  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("ok") });
  afterAll(() => server.stop(true));

  test.skipIf(Bun.which("wrk") === null)("wrk runs with the JSON summary hook and is parsed", async () => {
    const path = `${tmpdir()}/qv-wrk-${process.pid}.lua`;
    await Bun.write(path, getScript("/"));
    const r = await runWrk({ wrk: Bun.which("wrk") as string, url: `http://127.0.0.1:${server.port}`, script: path, connections: 2, threads: 1, durationS: 1, cpu: "0-1" });
    expect(r.requests).toBeGreaterThan(100);
    expect(r.requestsPerSec).toBeGreaterThan(100);
    expect(r.errors).toBe(0);
  });
});

describe("machine probes", () => {
  test("CPU busy share is a fraction and our own RSS is readable", async () => {
    const busy = await cpuBusyShare(100);
    if (busy !== null) expect(busy >= 0 && busy <= 1).toBe(true);
    const mem = await memoryMb(process.pid);
    if (mem !== null) expect(mem.rssMb).toBeGreaterThan(1);
  });
});
