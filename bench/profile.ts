import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Breakdown, breakdown, renameJitDump, top, total } from "./lib/perf-jit.ts";
import { canPin, type RunningServer } from "./lib/processes.ts";
import { ensureWrk, runWrk } from "./lib/wrk.ts";
import { rotatingBatchScript, rotatingPostScript } from "./lib/wrk-lua.ts";
import { BATCH_LOOKUP_PARTS, probeLookup, singleLookupBody } from "./suites/lookup-probe.ts";
import { SERVER_ENV, startPinned } from "./suites/measure.ts";
import { runGenerator } from "./lib/generator.ts";
import { machineInfo } from "./lib/machine.ts";
import type { BenchContext } from "./suites/suite.ts";

/**
 * Where the server's CPU goes per lookup, against the protocol floor:
 * `bun bench/profile.ts [--seconds 8] [--entities 1000000] [--batch 1]` (needs `perf`,
 * Debian's linux-perf, and wrk; run as root on an otherwise idle machine).
 *
 * Each server (the floor: a bare Bun.serve parsing the same request and
 * answering a body of the same size; then Quiver as the lookup bench runs it)
 * is pinned to core 1 with JavaScriptCore writing its JIT dump, warmed 3 s by
 * wrk on core 0, then sampled by `perf record -g` (1999 Hz) for `--seconds`
 * under the same wrk load. The dump is renamed so `perf inject --jit` reads it
 * (lib/perf-jit.ts), and the serving thread's samples are split by kind and
 * reported in µs per request: JavaScript by function, Bun's native code by
 * the JavaScript that called it, native code with no JavaScript above it (the
 * HTTP server, the collector), the kernel. Prints a table; keeps nothing but
 * what `--keep DIR` asks for. `--quiver-arg` (repeatable) passes an argument to
 * Quiver's server as well, e.g. `--quiver-arg=--topology --quiver-arg=t.yaml
 * --quiver-arg=--cache-l1 --quiver-arg=off` to profile lookups on Redis shards
 * the caller started (and pinned to core 1, as the Redis benches do).
 * `--open-rate N` drives both servers with the project's generator in open
 * loop at N requests a second (64 connections) instead of wrk's closed loop:
 * the regime of the half-max latency runs, where each request comes on its
 * own wake-up, so per-turn costs are per-request costs.
 */
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "8" },
    entities: { type: "string", default: "1000000" },
    top: { type: "string", default: "15" },
    batch: { type: "string", default: "1" },
    keep: { type: "string" },
    "quiver-arg": { type: "string", multiple: true },
    "open-rate": { type: "string" },
  },
});
const seconds = Number(values.seconds);
const entities = Number(values.entities);
const topN = Number(values.top);
const batch = Number(values.batch);
const quiverArgs = values["quiver-arg"] ?? [];
const openRate = values["open-rate"] === undefined ? undefined : Number(values["open-rate"]);
if (openRate !== undefined && !(Number.isInteger(openRate) && openRate > 0)) throw new Error("profile: --open-rate must be a positive integer (requests a second)");
if (!(seconds > 0 && Number.isInteger(entities) && entities > 0 && topN > 0 && Number.isInteger(batch) && batch > 0)) throw new Error("profile: --seconds, --entities, --top and --batch must be positive numbers");
if (Bun.which("perf") === null) {
  process.stderr.write("profile: needs perf (apt-get install -y linux-perf)\n");
  process.exit(2);
}
const root = resolve(import.meta.dir, "..");
const log = (line: string) => process.stderr.write(`${line}\n`);
const wrk = await ensureWrk(log);
if (wrk.path === null) {
  process.stderr.write(`profile: needs wrk (${wrk.note})\n`);
  process.exit(2);
}
const work = values.keep === undefined ? mkdtempSync(join(tmpdir(), "quiver-profile-")) : resolve(values.keep);
mkdirSync(work, { recursive: true });
const ctx: BenchContext = { root, resultsDir: work, rawDir: work, reportsDir: work, seconds, throughputSeconds: seconds, serverCpu: "1", driverCpu: "0", wrk, machine: () => machineInfo(canPin() ? "server taskset -c 1, driver taskset -c 0" : "unpinned"), log };
const placeholder = "@@ID@@";
const script = join(work, "single.lua");
// perf keeps copies of every binary it samples (bun itself, ~90 MB, and each JIT function) in a build-id cache under
// $HOME/.debug (this perf does not read PERF_BUILDID_DIR): record skips it (-N), and inject's goes with this run's directory.
const perfEnv = { ...process.env, HOME: work };
writeFileSync(
  script,
  batch === 1
    ? rotatingPostScript({ path: "/v1/lookup", body: singleLookupBody(placeholder), placeholder, firstId: 1001, entities, seed: 1, contentType: "application/json" })
    : rotatingBatchScript({ path: "/v1/lookup", ...BATCH_LOOKUP_PARTS, rows: batch, firstId: 1001, entities, seed: 1, contentType: "application/json" }),
);

interface Profile {
  readonly name: string;
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly hz: number;
  readonly serving: Breakdown;
  readonly others: Breakdown;
}

/** Drives `server` for `durationS` (wrk closed loop, or the generator in open loop with `--open-rate`). */
async function drive(server: RunningServer, durationS: number, name: string): Promise<{ requestsPerSec: number; requests: number }> {
  if (openRate === undefined) return runWrk({ wrk: wrk.path!, url: `${server.url}/`, script, connections: 32, threads: 1, durationS, cpu: ctx.driverCpu });
  const args = { target: server.url, scenario: "lookup", batch, mode: "open", rate: openRate, connections: 64, entities, duration: `${durationS}s`, warmup: "0s" };
  const run = await runGenerator({ root, cpu: ctx.driverCpu, jsonPath: join(work, `${name}-gen.json`), args, timeoutS: durationS * 3 + 60 });
  log(`  ${name}: ${Math.round(run.rate.achieved)} req/s, p99 ${run.latencyMs.p99} ms, own send lag p99 ${run.ownSendLagMs.p99} ms`);
  return { requestsPerSec: Math.round(run.rate.achieved), requests: run.requests.ok + run.requests.errors };
}

/** Samples `server` (started with the JIT dump on) under load (wrk, or the generator at `--open-rate`); stops it. */
async function profile(name: string, server: RunningServer): Promise<Profile> {
  const dir = join(work, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    await drive(server, 3, `${name}-warm`);
    const hz = 1999;
    const perf = Bun.spawn(["perf", "record", "-N", "-k", "1", "-F", String(hz), "-g", "-p", String(server.pid), "-o", join(dir, "perf.data"), "--", "sleep", String(seconds + 1)], { stdout: "ignore", stderr: "pipe", env: perfEnv });
    await Bun.sleep(500);
    const run = await drive(server, seconds, name);
    await perf.exited;
    if (perf.exitCode !== 0) throw new Error(`perf record: ${(await new Response(perf.stderr).text()).slice(-400)}`);
    await server.stop();
    const raw = readFileSync(join(dir, "perf.data"));
    const renamed = renameJitDump(raw);
    if (renamed === null) throw new Error("profile: perf.data names no JIT dump (was BUN_JSC_useJITDump on?)");
    writeFileSync(join(dir, "perf.named.data"), renamed.data);
    copyFileSync(join(jitDir, renamed.from), join(jitDir, renamed.to));
    const inject = Bun.spawnSync(["perf", "inject", "--jit", "-i", join(dir, "perf.named.data"), "-o", join(dir, "perf.jit.data")], { stdout: "ignore", stderr: "pipe", env: perfEnv });
    if (inject.exitCode !== 0) throw new Error(`perf inject: ${inject.stderr.toString().slice(-400)}`);
    const out = Bun.spawnSync(["perf", "script", "-F", "tid,ip,sym,dso", "-i", join(dir, "perf.jit.data")], { stdout: "pipe", stderr: "ignore", env: perfEnv, maxBuffer: 2 << 30 });
    const text = out.stdout.toString();
    // The serving thread is the main one (its id is the process's); the rest are the JIT's, the collector's helpers, the allocator's.
    return {
      name,
      requestsPerSec: run.requestsPerSec,
      requests: run.requests,
      hz,
      serving: breakdown(text, (tid) => tid === server.pid),
      others: breakdown(text, (tid) => tid !== server.pid),
    };
  } finally {
    await server.stop();
  }
}

function usPerRequest(p: Profile, samples: number): number {
  return (samples / p.hz / p.requests) * 1e6;
}

function report(floor: Profile, quiver: Profile): string {
  const f = (p: Profile, n: number) => usPerRequest(p, n).toFixed(2);
  const rows: string[] = [];
  const row = (what: string, a: string, b: string) => rows.push(`| ${what} | ${a} | ${b} |`);
  rows.push(`| µs per request of ${batch === 1 ? "one entity" : `${batch} entities`} (serving thread) | floor | Quiver |`, `|---|---:|---:|`);
  row(openRate === undefined ? "requests/s under wrk while sampled" : "requests/s, open loop, while sampled", String(floor.requestsPerSec), String(quiver.requestsPerSec));
  row("all", f(floor, floor.serving.samples), f(quiver, quiver.serving.samples));
  row("kernel", f(floor, floor.serving.kernel), f(quiver, quiver.serving.kernel));
  row("native, no JavaScript above (HTTP server, collector)", f(floor, floor.serving.nativeAlone), f(quiver, quiver.serving.nativeAlone));
  row("native, called from JavaScript", f(floor, total(floor.serving.nativeUnderJs)), f(quiver, total(quiver.serving.nativeUnderJs)));
  row("JavaScript", f(floor, total(floor.serving.js)), f(quiver, total(quiver.serving.js)));
  row("other threads (JIT, collector helpers, allocator)", f(floor, floor.others.samples), f(quiver, quiver.others.samples));
  const list = (title: string, p: Profile, m: ReadonlyMap<string, number>) => [`\n${title}:`, ...top(m, topN).map(([k, n]) => `  ${f(p, n).padStart(6)} µs  ${k}`)];
  return [
    ...rows,
    ...list("Quiver's JavaScript by function (self)", quiver, quiver.serving.js),
    ...list("Quiver's native work by the JavaScript that called it", quiver, quiver.serving.nativeUnderJs),
    ...list("The floor's native work by the JavaScript that called it", floor, floor.serving.nativeUnderJs),
  ].join("\n");
}

const jitDir = join(work, "jit");
mkdirSync(jitDir, { recursive: true });
/** The servers write JavaScriptCore's JIT dump (what perf inject turns into function names). */
const jitEnv = { BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: jitDir };
if (!canPin()) log("profile: taskset not found, running unpinned");
try {
  const bodyBytes = (await (async () => {
    const q = await startPinned(ctx, "quiver (probe)", "src/main.ts", ["--grpc-port", "-1", ...quiverArgs, "--demo-entities", String(entities)], { readyPath: "/readyz", timeoutMs: 300_000, env: SERVER_ENV });
    try {
      return (await probeLookup(q.url, entities, batch)).responseBytes;
    } finally {
      await q.stop();
    }
  })());
  const floor = await profile("floor", await startPinned(ctx, "protocol floor", "bench/servers/bare-server.ts", ["--body-bytes", String(bodyBytes), "--parse-json"], { readyPath: "/__ready", timeoutMs: 15_000, env: jitEnv }));
  const quiver = await profile("quiver", await startPinned(ctx, "quiver", "src/main.ts", ["--grpc-port", "-1", ...quiverArgs, "--demo-entities", String(entities)], { readyPath: "/readyz", timeoutMs: 300_000, env: { ...SERVER_ENV, ...jitEnv } }));
  process.stdout.write(`${report(floor, quiver)}\n`);
} finally {
  if (values.keep === undefined) rmSync(work, { recursive: true, force: true });
}
