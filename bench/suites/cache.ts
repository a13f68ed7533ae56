import type { Subprocess } from "bun";
import { canPin, freePort, onInterrupt, owned, stopProcess } from "../lib/processes.ts";
import { type Check, ratio } from "../lib/results.ts";
import type { Suite } from "./suite.ts";

/** `npm run bench -- cache --quick` (or BENCH_QUICK=1): 100k entities and short runs, to check the suite end to end. */
const QUICK = process.argv.includes("--quick") || process.env["BENCH_QUICK"] === "1";

interface WorkerOutput {
  entities: number;
  delayMs: number;
  rate: number;
  warmOps: number;
  measureOps: number;
  l1Bytes: number;
  l1Entries: number;
  off: { ops: number; seconds: number; p50: number; p99: number; failed: number };
  on: { ops: number; seconds: number; p50: number; p99: number; failed: number };
  counts: Record<string, number>;
  l1Ratio: number;
  l2Ratio: number;
  combined: number;
  originReadsPerLookup: number;
  l1HitRps: number;
  embeddedRps: number;
  l1RawRps: number;
  embeddedRawRps: number;
}

function pinned(cpu: string, argv: string[]): string[] {
  return canPin() ? ["taskset", "-c", cpu, ...argv] : argv;
}

async function startRedisServer(cpu: string, extra: string[]): Promise<{ port: number; proc: Subprocess }> {
  const port = freePort();
  const proc = Bun.spawn(pinned(cpu, ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...extra]), {
    stdout: "ignore",
    stderr: "ignore",
  });
  const until = performance.now() + 10_000;
  while (performance.now() < until) {
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return { port, proc };
    } catch {
      await Bun.sleep(50);
    }
  }
  await stopProcess(proc);
  throw new Error(`redis-server on ${port} did not start`);
}

/**
 * Issue 7's figures: the origin 10 ms away each way (TCP delay proxy; no netem
 * here), L2 local, Zipf(0.99) over 1M entities, L1 sized for ~10% of the rows.
 * Hit ratios per tier, lookup p50/p99 with caches against the same load
 * without, and L1-hit throughput against the embedded store in the same run.
 * Redis servers run on the driver core, the measuring process on the server core.
 */
export const cacheSuite: Suite = {
  name: "cache",
  file: "cache.json",
  async unavailable() {
    return Bun.which("redis-server") === null ? "redis-server not installed" : null;
  },
  async run(ctx) {
    const started: Subprocess[] = [];
    const cleanup = async (): Promise<void> => {
      await Promise.allSettled(started.map((p) => stopProcess(p)));
    };
    const off = onInterrupt(cleanup);
    try {
      const origin = await startRedisServer(ctx.driverCpu, []);
      started.push(origin.proc);
      const l2 = await startRedisServer(ctx.driverCpu, ["--maxmemory", "1gb", "--maxmemory-policy", "allkeys-lru"]);
      started.push(l2.proc);
      const args = {
        originPort: origin.port,
        l2Port: l2.port,
        entities: QUICK ? 100_000 : 1_000_000,
        delayMs: 10,
        warmOps: QUICK ? 150_000 : 800_000,
        measureOps: QUICK ? 50_000 : 300_000,
        concurrency: 128,
        rate: 2000,
        latencySeconds: QUICK ? 3 : 10,
        hitSeconds: QUICK ? 0.5 : 2,
        rounds: 3,
      };
      const worker = owned(Bun.spawn(pinned(ctx.serverCpu, [process.execPath, "bench/cache/worker.ts", JSON.stringify(args)]), { cwd: ctx.root, stdout: "pipe", stderr: "inherit" }));
      started.push(worker);
      const [out, code] = await Promise.all([new Response(worker.stdout).text(), worker.exited]);
      if (code !== 0) throw new Error(`cache bench worker exited with ${code}`);
      const m = JSON.parse(out.trim().split("\n").pop() ?? "{}") as WorkerOutput;
      return result(ctx, m, QUICK);
    } finally {
      await cleanup();
      off();
    }
  },
};

function result(ctx: Parameters<Suite["run"]>[0], m: WorkerOutput, quick: boolean) {
  const checks: Check[] = [
    { name: "combined hit ratio (lookups not sent to the origin)", unit: "", baseline: null, measured: round(m.combined), ratio: null, target: ">= 0.8", pass: m.combined >= 0.8 },
    { name: "L1 hit ratio", unit: "", baseline: null, measured: round(m.l1Ratio), ratio: null, target: ">= 0.3", pass: m.l1Ratio >= 0.3 },
    { name: "L2 hit ratio (of L1 misses)", unit: "", baseline: null, measured: round(m.l2Ratio), ratio: null, target: ">= 0.5", pass: m.l2Ratio >= 0.5 },
    { name: "origin reads per lookup", unit: "", baseline: 1, measured: round(m.originReadsPerLookup), ratio: ratio(m.originReadsPerLookup, 1), target: "info", pass: null },
    { name: `lookup p50 at ${m.rate}/s, caches on (baseline: caches off)`, unit: "ms", baseline: m.off.p50, measured: m.on.p50, ratio: ratio(m.on.p50, m.off.p50), target: "info", pass: null },
    { name: `lookup p99 at ${m.rate}/s, caches on (baseline: caches off)`, unit: "ms", baseline: m.off.p99, measured: m.on.p99, ratio: ratio(m.on.p99, m.off.p99), target: "info", pass: null },
    { name: "L1-hit reads/s (baseline: embedded store)", unit: "reads/s", baseline: m.embeddedRps, measured: m.l1HitRps, ratio: ratio(m.l1HitRps, m.embeddedRps), target: ">= 0.9", pass: m.l1HitRps / m.embeddedRps >= 0.9 },
    { name: "L1-hit raw reads/s, stored bytes to the answer writer as lookups take them (baseline: embedded store raw reads)", unit: "reads/s", baseline: m.embeddedRawRps, measured: m.l1RawRps, ratio: ratio(m.l1RawRps, m.embeddedRawRps), target: "info", pass: null },
  ];
  return {
    suite: "cache",
    title: "Edge cache tiers: L1 + L2 in front of a distant origin (issue 7)",
    date: new Date().toISOString(),
    machine: ctx.machine(),
    checks,
    baseline: { cachesOff: m.off, embeddedReadsPerSecond: m.embeddedRps },
    measured: { ...m },
    targets: { combinedHitRatio: ">= 0.8", l1HitRatio: ">= 0.3 (design reference)", l2HitRatio: ">= 0.5 (design reference)", l1HitThroughputRatio: ">= 0.9" },
    notes: [
      `${quick ? "QUICK MODE (not reportable): " : ""}${m.entities.toLocaleString("en-US")} entities, Zipf(0.99) keys, one key per lookup; origin = one redis-server behind a TCP delay proxy adding ${m.delayMs} ms each way; L2 = a local redis-server (allkeys-lru), 5 ms call bound.`,
      `L1 budget ${Math.round(m.l1Bytes / 1048576)} MB (~10% of the rows; ${m.l1Entries.toLocaleString("en-US")} entries after the measured lookups). Hit ratios: ${m.warmOps.toLocaleString("en-US")} warm-up lookups, then ${m.measureOps.toLocaleString("en-US")} measured, 128 closed-loop clients. L2 starts empty, so its ratio still includes first reads of the Zipf tail.`,
      `Latency: open loop at ${m.rate} lookups/s for ${m.on.seconds.toFixed(0)} s each, caches on then off, the same key sequence; latency from each lookup's scheduled arrival.`,
      `L1-hit throughput: single-key reads answered now (getManyNow, rows decoded; and raw reads, the stored bytes lookups are written from) over the 1,000 hottest keys, tight loop, best of 3 alternating rounds, against ArenaKvNode (the embedded store) in the same process.`,
      "The measuring process runs on the server core; redis-servers (origin, L2) on the driver core.",
    ],
  };
}

const round = (v: number): number => Math.round(v * 10_000) / 10_000;
