import { ALLOC_CASES, type AllocCase, type AllocMeasure, allocationPerRequest, CODE_CELL_KINDS, type CodeCells } from "../alloc/gc-log.ts";
import { canPin, owned } from "../lib/processes.ts";
import type { Check } from "../lib/results.ts";
import type { BenchContext, Suite } from "./suite.ts";

/** Requests per case for a first try; doubled until the window holds enough collections. */
const FIRST_TRY: Record<AllocCase, number> = { harness: 200_000, parse: 100_000, "harness-msgpack": 200_000, "parse-msgpack": 100_000, "json-1": 50_000, "msgpack-1": 50_000, "json-100": 8_000, "msgpack-100": 8_000, "feast-1": 50_000, "feast-100": 4_000, "json-1-l1": 50_000, "json-100-l1": 8_000, "json-100-l1-partial": 8_000 };
const MAX_REQUESTS = 3_200_000;

interface CaseResult extends AllocMeasure {
  readonly case: AllocCase;
  readonly answerBytes: number;
  readonly totalRequests: number;
}

/** Runs the in-process driver for one case with JSC's GC log on and reads bytes per request from it. */
async function measureCase(ctx: BenchContext, which: AllocCase): Promise<CaseResult> {
  for (let n = FIRST_TRY[which]; n <= MAX_REQUESTS; n *= 2) {
    const argv = [process.execPath, "bench/alloc/drive-lookups.ts", which, String(n)];
    const proc = owned(Bun.spawn(canPin() ? ["taskset", "-c", ctx.serverCpu, ...argv] : argv, {
      cwd: ctx.root,
      env: { ...process.env, BUN_JSC_logGC: "1" },
      stdout: "pipe",
      stderr: "pipe",
    }));
    const killer = setTimeout(() => proc.kill("SIGKILL"), 300_000);
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    await proc.exited;
    clearTimeout(killer);
    if (proc.exitCode !== 0) throw new Error(`drive-lookups ${which} ${n} failed (exit ${proc.exitCode}): ${err.split("\n").filter((l) => !l.startsWith("[GC") && !l.startsWith("AT ")).slice(-20).join("\n")}`);
    const info = JSON.parse(out.trim().split("\n").pop()!) as { answerBytes: number };
    const m = allocationPerRequest(err, n);
    if (m !== null) {
      ctx.log(`  ${which}: ${m.bytesPerRequest} B/request (±${m.resolutionBytes}), ${m.gcPer100k} young collections per 100k requests, ${info.answerBytes} B answers`);
      return { ...m, case: which, answerBytes: info.answerBytes, totalRequests: n };
    }
  }
  throw new Error(`${which}: fewer than 3 collections in ${MAX_REQUESTS} requests`);
}

/** Which process code-cells.ts builds: Bun alone, Quiver with gRPC off (the lookup benches' server), Quiver as `npm start` builds it. */
const CODE_BUILDS = ["bare", "http", "grpc"] as const;
type CodeBuild = (typeof CODE_BUILDS)[number];
/** Each build measured this many times, taking turns; the median pause is kept (cell counts do not vary). */
const CODE_ROUNDS = 3;

async function codeCells(ctx: BenchContext, which: CodeBuild): Promise<CodeCells> {
  const argv = [process.execPath, "bench/alloc/code-cells.ts", which];
  const proc = owned(Bun.spawn(canPin() ? ["taskset", "-c", ctx.serverCpu, ...argv] : argv, { cwd: ctx.root, stdout: "pipe", stderr: "pipe" }));
  const killer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  if (proc.exitCode !== 0) throw new Error(`code-cells ${which} failed (exit ${proc.exitCode}): ${err.slice(-2000)}`);
  return JSON.parse(out.trim().split("\n").pop()!) as CodeCells;
}

/** Code cells and idle young-collection pauses of the three builds, rounds taking turns; per build the median round by pause. */
async function measureCode(ctx: BenchContext): Promise<Record<CodeBuild, CodeCells>> {
  const runs: Record<CodeBuild, CodeCells[]> = { bare: [], http: [], grpc: [] };
  for (let r = 0; r < CODE_ROUNDS; r++) for (const b of CODE_BUILDS) runs[b].push(await codeCells(ctx, b));
  const median = (xs: CodeCells[]) => [...xs].sort((a, b) => a.idleYoungMs - b.idleYoungMs)[xs.length >> 1]!;
  const out = { bare: median(runs.bare), http: median(runs.http), grpc: median(runs.grpc) };
  for (const b of CODE_BUILDS) ctx.log(`  ${b}: ${out[b].cells} code cells, idle young collection ${out[b].idleYoungMs} ms (rounds: ${runs[b].map((x) => x.idleYoungMs).join(", ")}), full collection ${out[b].fullMs} ms`);
  return out;
}

/**
 * Allocation per lookup, measured in-process from JavaScriptCore's GC log:
 * deterministic (the same code allocates the same bytes however loaded the
 * machine is), so it can guide work on the hot path while throughput numbers
 * are noise. Young collections are what put Quiver's tail above the bare
 * server's; bytes per lookup is how often they come.
 */
export const lookupAllocSuite: Suite = {
  name: "lookup-alloc",
  file: "lookup-alloc.json",
  unavailable: async () => null,
  async run(ctx) {
    const r = {} as Record<AllocCase, CaseResult>;
    for (const c of ALLOC_CASES) r[c] = await measureCase(ctx, c);
    const code = await measureCode(ctx);
    const driver = (c: AllocCase) => (c.includes("msgpack") ? r["harness-msgpack"] : r.harness).bytesPerRequest;
    const net = (c: AllocCase) => r[c].bytesPerRequest - driver(c);
    const checks: Check[] = [
      { name: "driver's own allocation per request (Request object, fixed answer), JSON / MessagePack body", unit: "B", baseline: r.harness.bytesPerRequest, measured: r["harness-msgpack"].bytesPerRequest, ratio: null, target: "info", pass: null },
      { name: "bare handler parsing the JSON request (the protocol floor's work), net of the driver", unit: "B", baseline: null, measured: net("parse"), ratio: null, target: "info", pass: null },
      { name: "bare handler decoding the MessagePack request, net of the driver", unit: "B", baseline: null, measured: net("parse-msgpack"), ratio: null, target: "info", pass: null },
    ];
    for (const c of ["json-1", "msgpack-1", "json-100", "msgpack-100", "feast-1", "feast-100", "json-1-l1", "json-100-l1", "json-100-l1-partial"] as const) {
      const floor = net(c.startsWith("msgpack") ? "parse-msgpack" : "parse");
      const cache = c.endsWith("-l1") ? " from L1 cache hits" : c.endsWith("-l1-partial") ? " from L1, one key of the hundred read through" : "";
      const what = c.startsWith("feast") ? "/get-online-features (Feast)" : `/v1/lookup ${c.startsWith("json") ? "JSON" : "MessagePack"}${cache}`;
      checks.push({
        name: `${what}, ${c.includes("-100") ? "100 entities" : "1 entity"} × 10 features, net of the driver (baseline: parsing the same format)`,
        unit: "B",
        baseline: floor,
        measured: net(c),
        ratio: floor > 0 ? Math.round((net(c) / floor) * 100) / 100 : null,
        target: "info",
        pass: null,
      });
    }
    const pauseRatio = (b: CodeCells) => Math.round((b.idleYoungMs / code.bare.idleYoungMs) * 100) / 100;
    checks.push(
      { name: "code cells a built server holds (finalized at every collection): gRPC off, as the lookup benches run it (baseline: Bun alone)", unit: "", baseline: code.bare.cells, measured: code.http.cells, ratio: null, target: "info", pass: null },
      { name: "code cells a built server holds: gRPC on, as npm start runs it (baseline: gRPC off)", unit: "", baseline: code.http.cells, measured: code.grpc.cells, ratio: null, target: "info", pass: null },
      { name: "young collection with nothing to collect, median pause: gRPC off (baseline: Bun alone)", unit: "ms", baseline: code.bare.idleYoungMs, measured: code.http.idleYoungMs, ratio: pauseRatio(code.http), target: "info", pass: null },
      { name: "young collection with nothing to collect, median pause: gRPC on (baseline: Bun alone)", unit: "ms", baseline: code.bare.idleYoungMs, measured: code.grpc.idleYoungMs, ratio: pauseRatio(code.grpc), target: "info", pass: null },
      { name: "full collection, synchronous, median: gRPC off (baseline: gRPC on)", unit: "ms", baseline: code.grpc.fullMs, measured: code.http.fullMs, ratio: Math.round((code.http.fullMs / code.grpc.fullMs) * 100) / 100, target: "info", pass: null },
    );
    return {
      suite: "lookup-alloc",
      title: "Allocation per lookup (in-process, from the GC log)",
      date: new Date().toISOString(),
      machine: ctx.machine(),
      checks,
      baseline: { driver: r.harness, parse: r.parse, driverMsgpack: r["harness-msgpack"], parseMsgpack: r["parse-msgpack"] },
      measured: { ...Object.fromEntries(ALLOC_CASES.map((c) => [c, r[c]])), code },
      targets: {},
      notes: [
        "Bytes per request = bytes JavaScriptCore allocated over whole young-generation cycles (BUN_JSC_logGC=1) divided by the requests those cycles spanned; the driver calls the native /v1/lookup handler in-process over 10,000 demo drivers (bench/alloc/drive-lookups.ts).",
        "Deterministic: independent of machine load (only the ± mark resolution varies). Fewer bytes per lookup means fewer young collections per request, which is what sets the tail at a given rate.",
        `Code cells: live cells of the kinds JavaScriptCore finalizes at every collection, young or full (${CODE_CELL_KINDS.join(", ")}), after a full collection, in a process that built Quiver with 1,000 demo rows (bench/alloc/code-cells.ts). They set the floor of every young collection's pause: the pacer runs one every 50 ms under load (runtime/young-gc-pacer.ts). Pauses: median of 41 young collections 5 ms apart with nothing allocated between them (full collections: median of 9), ${CODE_ROUNDS} rounds taking turns, the median round kept; timed, so they vary with the host, the cell counts do not.`,
      ],
    };
  },
};
