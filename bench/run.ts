import { mkdirSync, readdirSync } from "node:fs";
import { resolve } from "node:path";
import { machineInfo, waitForQuiet } from "./lib/machine.ts";
import { canPin, runInterruptCleanups } from "./lib/processes.ts";
import { summaryMarkdown } from "./lib/results.ts";
import type { SuiteResult } from "./lib/results.ts";
import { ensureWrk, wrkVersion } from "./lib/wrk.ts";
import { SUITES } from "./suites/index.ts";
import type { BenchContext } from "./suites/index.ts";
import { SuiteSkipped } from "./suites/suite.ts";

/**
 * `npm run bench [-- suite ...]`: runs the suites (all by default), writes
 * bench/results/<file>.json for each and rebuilds bench/results/SUMMARY.md from
 * every result file present. BENCH_SECONDS sets the length of each latency
 * measurement (throughput runs take half); BENCH_QUIET_WAIT how long to wait for
 * an idle machine before each suite (default 30 s).
 *
 * `--quick` checks that suites run end to end, not what they measure: 2 s
 * measurements, one round of each latency comparison, 10,000 entities, no wait for a quiet machine, and results,
 * summary and reports under bench/results/raw/quick/ (the committed results stay).
 */
async function main(argv: string[]): Promise<number> {
  const root = resolve(import.meta.dir, "..");
  const quick = argv.includes("--quick");
  if (quick) {
    for (const [k, v] of [["BENCH_SECONDS", "2"], ["BENCH_ENTITIES", "10000"], ["BENCH_REDIS_ENTITIES", "10000"], ["BENCH_QUIET_WAIT", "0"], ["BENCH_LATENCY_ROUNDS", "1"]] as const) process.env[k] ??= v;
  }
  const unknownFlags = argv.filter((a) => a.startsWith("-") && a !== "--quick");
  if (unknownFlags.length > 0) {
    process.stderr.write(`bench: unknown option(s) ${unknownFlags.join(", ")}; known: --quick\n`);
    return 2;
  }
  const names = argv.filter((a) => !a.startsWith("-"));
  const unknown = names.filter((n) => !SUITES.some((s) => s.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown suite(s) ${unknown.join(", ")}; known: ${SUITES.map((s) => s.name).join(", ")}\n`);
    return 2;
  }
  const chosen = names.length === 0 ? SUITES : SUITES.filter((s) => names.includes(s.name));
  const resultsDir = quick ? `${root}/bench/results/raw/quick` : `${root}/bench/results`;
  const rawDir = `${resultsDir}/raw`;
  const reportsDir = quick ? `${resultsDir}/reports` : `${root}/loadtest/reports`;
  mkdirSync(rawDir, { recursive: true });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const seconds = Number(process.env["BENCH_SECONDS"] ?? 10);
  if (!(seconds > 0)) throw new Error(`BENCH_SECONDS: expected a positive number, got ${process.env["BENCH_SECONDS"]}`);
  const wrk = await ensureWrk(log);
  const pinning = canPin() ? "server taskset -c 1, driver taskset -c 0" : "unpinned (taskset not found)";
  const ctx: BenchContext = {
    root,
    resultsDir,
    rawDir,
    reportsDir,
    seconds,
    throughputSeconds: Math.max(3, Math.round(seconds / 2)),
    serverCpu: "1",
    driverCpu: "0",
    wrk,
    machine: () => ({ ...machineInfo(pinning), busyAtStart, ...(wrk.path !== null ? { wrk: wrkVersion(wrk.path) } : {}) }),
    log,
  };
  let busyAtStart: number | null = null;
  const quietWaitS = Number(process.env["BENCH_QUIET_WAIT"] ?? 30);
  let failed = 0;
  for (const suite of chosen) {
    const why = await suite.unavailable(ctx);
    if (why !== null) {
      log(`bench ${suite.name}: skipped: ${why}`);
      continue;
    }
    busyAtStart = await waitForQuiet(quietWaitS, log);
    log(`bench ${suite.name}: running (${seconds} s per latency measurement); machine ${busyAtStart === null ? "?" : Math.round(busyAtStart * 100)}% busy at start`);
    const t = performance.now();
    try {
      const result = await suite.run(ctx);
      await Bun.write(`${resultsDir}/${suite.file}`, `${JSON.stringify(result, null, 2)}\n`);
      log(`bench ${suite.name}: wrote ${resultsDir.slice(root.length + 1)}/${suite.file} in ${Math.round((performance.now() - t) / 1000)} s`);
      for (const c of result.checks) log(`  ${c.pass === null ? "·" : c.pass ? "✓" : "✗"} ${c.name}: ${c.measured}${c.unit ? ` ${c.unit}` : ""}${c.ratio !== null ? ` (ratio ${c.ratio})` : ""} target ${c.target}`);
    } catch (e) {
      if (e instanceof SuiteSkipped) {
        log(`bench ${suite.name}: skipped: ${e.message}`);
        continue;
      }
      failed++;
      log(`bench ${suite.name}: FAILED: ${(e as Error).stack ?? e}`);
    }
  }
  await writeSummary(resultsDir);
  log(`bench: wrote ${resultsDir.slice(root.length + 1)}/SUMMARY.md${quick ? " (quick mode: figures only show the suites run, not what they measure)" : ""}`);
  return failed > 0 ? 1 : 0;
}

/** SUMMARY.md covers every result file, so running one suite keeps the others' rows. */
async function writeSummary(resultsDir: string): Promise<void> {
  const order = new Map(SUITES.map((s, i) => [s.file, i]));
  const files = readdirSync(resultsDir)
    .filter((f) => f.endsWith(".json"))
    .sort((a, b) => (order.get(a) ?? 99) - (order.get(b) ?? 99) || a.localeCompare(b));
  const results: { file: string; result: SuiteResult }[] = [];
  for (const file of files) {
    const result = (await Bun.file(`${resultsDir}/${file}`).json()) as SuiteResult;
    if (Array.isArray(result.checks)) results.push({ file, result });
  }
  await Bun.write(`${resultsDir}/SUMMARY.md`, summaryMarkdown(results));
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping what it started\n`);
    void runInterruptCleanups().then(() => process.exit(130));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
