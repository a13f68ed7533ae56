import { writeFileSync } from "node:fs";
import { natsServerBinary, type NatsProcess, startNats } from "../../test/support/nats-process.ts";
import { type RedisProcess, startRedis } from "../../test/support/redis-process.ts";
import { canPin, cpuSeconds, freePort, memoryMb, owned, type RunningServer, startServer } from "../lib/processes.ts";
import { type Check, ratio } from "../lib/results.ts";
import { type BenchCluster, clusterUp } from "./redis-cluster.ts";
import type { BenchContext, Suite } from "./suite.ts";

/**
 * Issue 11's figures: events/s per consumer core from each engine (Redis
 * Streams, NATS JetStream) into the embedded store and into a local 3-shard
 * Redis cluster, the consumer's CPU, freshness p99 at half the maximum rate,
 * and each engine's own publish rate on this machine as the reference.
 * The consumer (`src/ingest/cli.ts`) is pinned to the server core; engines and
 * the producer to the driver core. `--quick` (or BENCH_QUICK=1): fewer events.
 */
type Engine = "redis" | "nats";
type Store = "embedded" | "redis-cluster";

interface Run {
  readonly engine: Engine;
  readonly store: Store;
  readonly events: number;
  readonly publishRate: number;
  readonly consumeRate: number;
  readonly eventsPerCpuSecond: number;
  readonly consumerCpuSeconds: number;
  readonly halfRate: number;
  readonly freshnessP99Ms: number | null;
  readonly memory: Awaited<ReturnType<typeof memoryMb>>;
}

const quick = () => process.argv.includes("--quick") || process.env["BENCH_QUICK"] === "1";

function pin(pid: number, cpu: string): void {
  if (canPin()) Bun.spawnSync(["taskset", "-cp", cpu, String(pid)], { stdout: "ignore", stderr: "ignore" });
}

function sourcesYaml(engine: Engine, tag: string, redis: RedisProcess, nats: NatsProcess): string {
  const engineBlock =
    engine === "redis"
      ? `    redis: { url: "redis://${redis.address}", stream: "bench:${tag}", group: quiver, claimIdle: 60s }`
      : `    nats: { servers: "${nats.url}", stream: BENCH_${tag}, consumer: quiver, subject: bench.${tag}, ackWait: 60s }`;
  return `sources:
  - name: bench
    engine: ${engine}
${engineBlock}
    format: json
    batchSize: 1000
    mappings:
      - featureView: fraud_signals
        keys: { customer_id: customer.id }
        eventTime: { path: ts, format: epoch_ms }
        idempotencyKey: event_id
        features:
          spend_1h: { path: amount_cents, scale: 0.01 }
          txn_count_1h: txn_count
          chargeback_flag: chargeback
`;
}

async function produce(ctx: BenchContext, sources: string, args: string[]): Promise<{ sent: number; rate: number }> {
  const argv = [process.execPath, "src/ingest/produce.ts", "--sources", sources, "--source", "bench", "--entities", "100000", ...args];
  const p = owned(Bun.spawn(canPin() ? ["taskset", "-c", ctx.driverCpu, ...argv] : argv, { cwd: ctx.root, stdout: "pipe", stderr: "ignore" }));
  const killer = setTimeout(() => p.kill("SIGKILL"), 300_000);
  const out = await new Response(p.stdout).text();
  await p.exited;
  clearTimeout(killer);
  const line = out.trim().split("\n").pop() ?? "";
  if (p.exitCode !== 0) throw new Error(`producer failed (exit ${p.exitCode}): ${out.slice(-500)}`);
  return JSON.parse(line) as { sent: number; rate: number };
}

interface IngestStatus {
  consumed: number;
  written: number;
  duplicate: number;
  late: number;
  filtered: number;
  deadLettered: number;
}

async function status(consumer: RunningServer): Promise<IngestStatus> {
  const body = (await (await fetch(`${consumer.url}/readyz`)).json()) as { ingest: IngestStatus[] };
  return body.ingest[0]!;
}

const handled = (s: IngestStatus) => s.written + s.duplicate + s.late + s.filtered + s.deadLettered;

/** Cumulative freshness bucket counts for the view, from /metrics. */
async function freshnessBuckets(consumer: RunningServer): Promise<Array<[number, number]>> {
  const text = await (await fetch(`${consumer.url}/metrics`)).text();
  const out: Array<[number, number]> = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("quiver_ingest_freshness_seconds_bucket{") || !line.includes('view="fraud_signals"')) continue;
    const le = /le="([^"]+)"/.exec(line)![1]!;
    out.push([le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(line.slice(line.lastIndexOf(" ") + 1))]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** p99 (bucket upper bound, ms) of the observations between two snapshots. */
function p99Between(before: Array<[number, number]>, after: Array<[number, number]>): number | null {
  const delta = after.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)] as [number, number]);
  const total = delta[delta.length - 1]?.[1] ?? 0;
  if (total <= 0) return null;
  const bound = delta.find(([, n]) => n >= total * 0.99)![0];
  return Number.isFinite(bound) ? bound * 1000 : null;
}

async function measure(ctx: BenchContext, o: { engine: Engine; store: Store; events: number; halfSeconds: number; redis: RedisProcess; nats: NatsProcess; cluster: BenchCluster | null }): Promise<Run> {
  const tag = `${o.engine}_${o.store.replace("-", "_")}_${Date.now()}`;
  const sources = `${ctx.rawDir}/ingest-${tag}.yaml`;
  writeFileSync(sources, sourcesYaml(o.engine, tag, o.redis, o.nats));
  ctx.log(`  ${o.engine} → ${o.store}: publishing ${o.events} events`);
  const published = await produce(ctx, sources, ["--rate", "10000000", "--count", String(o.events), "--duration", "600s"]);
  const port = freePort();
  const storeArgs = o.cluster ? ["--topology", o.cluster.topology] : [];
  const consumer = await startServer({
    name: `ingest ${o.engine} → ${o.store}`,
    argv: [process.execPath, "src/ingest/cli.ts", "--sources", sources, "--port", String(port), ...storeArgs],
    cpu: ctx.serverCpu,
    port,
    readyPath: "/readyz",
    timeoutMs: 120_000,
    cwd: ctx.root,
    log: ctx.log,
  });
  try {
    // Drain the backlog: rate between the first poll that saw work and the one that saw it all.
    let first: { t: number; n: number; cpu: number } | null = null;
    let last: { t: number; n: number; cpu: number } | null = null;
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      const n = handled(await status(consumer));
      const sample = { t: performance.now(), n, cpu: (await cpuSeconds(consumer.pid)) ?? 0 };
      if (n > 0 && first === null) first = sample;
      if (n >= published.sent) {
        last = sample;
        break;
      }
      await Bun.sleep(100);
    }
    if (!first || !last) throw new Error(`${o.engine} → ${o.store}: backlog not drained in 240 s`);
    const seconds = Math.max(0.001, (last.t - first.t) / 1000);
    const consumeRate = Math.round((last.n - first.n) / seconds);
    const cpu = Math.max(0.001, last.cpu - first.cpu);
    const eventsPerCpuSecond = Math.round((last.n - first.n) / cpu);
    ctx.log(`    consumed ${consumeRate}/s, ${eventsPerCpuSecond} events per consumer CPU-second (publish ${published.rate}/s)`);

    const halfRate = Math.max(100, Math.round(Math.min(consumeRate, published.rate) / 2));
    const before = await freshnessBuckets(consumer);
    const sent = await produce(ctx, sources, ["--rate", String(halfRate), "--duration", `${o.halfSeconds}s`]);
    const target = published.sent + sent.sent;
    const until = Date.now() + 60_000;
    while (Date.now() < until && handled(await status(consumer)) < target) await Bun.sleep(100);
    const freshnessP99Ms = p99Between(before, await freshnessBuckets(consumer));
    ctx.log(`    freshness p99 at ${halfRate}/s: <= ${freshnessP99Ms ?? "?"} ms`);
    return {
      engine: o.engine,
      store: o.store,
      events: published.sent,
      publishRate: published.rate,
      consumeRate,
      eventsPerCpuSecond,
      consumerCpuSeconds: Math.round(cpu * 100) / 100,
      halfRate,
      freshnessP99Ms,
      memory: await memoryMb(consumer.pid),
    };
  } finally {
    await consumer.stop();
  }
}

export const ingestSuite: Suite = {
  name: "ingest",
  file: "ingest.json",
  async unavailable() {
    if (Bun.which("redis-server") === null) return "redis-server not installed";
    if (Bun.which(natsServerBinary()) === null && !(await Bun.file(natsServerBinary()).exists())) return "nats-server not installed";
    return null;
  },
  async run(ctx) {
    const events = Number(process.env["BENCH_INGEST_EVENTS"] ?? (quick() ? 20_000 : 300_000));
    const halfSeconds = quick() ? 3 : ctx.seconds;
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    pin(redis.pid, ctx.driverCpu);
    pin(nats.pid, ctx.driverCpu);
    let cluster: BenchCluster | null = null;
    const runs: Run[] = [];
    try {
      for (const engine of ["redis", "nats"] as const) runs.push(await measure(ctx, { engine, store: "embedded", events, halfSeconds, redis, nats, cluster: null }));
      cluster = await clusterUp({ root: ctx.root, dir: `${ctx.rawDir}/ingest-cluster`, cpu: ctx.serverCpu, shards: 3, replicas: 1, log: ctx.log });
      for (const engine of ["redis", "nats"] as const) runs.push(await measure(ctx, { engine, store: "redis-cluster", events, halfSeconds, redis, nats, cluster }));
    } finally {
      await cluster?.down();
      await Promise.all([redis.stop(), nats.stop()]);
    }
    return result(ctx, runs, events);
  },
};

function result(ctx: BenchContext, runs: readonly Run[], events: number) {
  const name = (r: Run) => `${r.engine === "redis" ? "Redis Streams" : "NATS JetStream"} → ${r.store === "embedded" ? "embedded store" : "3-shard Redis cluster"}`;
  const checks: Check[] = [];
  for (const r of runs) {
    checks.push({
      name: `${name(r)}: events per consumer CPU-second (baseline: the engine's own publish rate)`,
      unit: "events/s",
      baseline: r.publishRate,
      measured: r.eventsPerCpuSecond,
      ratio: ratio(r.eventsPerCpuSecond, r.publishRate),
      target: r.store === "embedded" ? ">= 100,000" : "info",
      pass: r.store === "embedded" ? r.eventsPerCpuSecond >= 100_000 : null,
    });
    checks.push({
      name: `${name(r)}: freshness p99 at half max (${r.halfRate}/s)`,
      unit: "ms",
      baseline: null,
      measured: r.freshnessP99Ms,
      ratio: null,
      target: "<= 100 ms",
      pass: r.freshnessP99Ms === null ? null : r.freshnessP99Ms <= 100,
    });
  }
  return {
    suite: "ingest",
    title: "Streaming writers: Redis Streams and NATS JetStream into the store (issue 11)",
    date: new Date().toISOString(),
    machine: ctx.machine(),
    checks,
    baseline: Object.fromEntries(runs.map((r) => [`${r.engine}PublishRate`, r.publishRate])),
    measured: { events, runs },
    targets: { eventsPerCoreEmbedded: ">= 100000", freshnessP99Ms: "<= 100" },
    notes: [
      `${events.toLocaleString("en-US")} JSON events per run published first (backlog), then drained by one standalone consumer (src/ingest/cli.ts, batches of 1000) pinned to core ${ctx.serverCpu}; engines and the producer on core ${ctx.driverCpu}.`,
      "Events per consumer CPU-second = events handled / the consumer's user+system CPU over the drain; the publish rate is the producer's (JetStream-acknowledged / pipelined XADD) on the same machine.",
      "Freshness = event time (set by the producer when it generates the event) to the store's acknowledgement, from the consumer's histogram (bucket upper bound).",
    ],
  };
}
