/**
 * The cache bench's measuring process (started pinned by bench/suites/cache.ts):
 * the origin Redis sits behind a TCP delay proxy (network distance), L2 is a
 * local Redis, and lookups follow Zipf(0.99) over the entities. Prints one
 * JSON line with the figures.
 */
import { CacheTier, cacheMetrics, L1Cache } from "../../src/cache/index.ts";
import { L2Store } from "../../src/cache/l2-store.ts";
import { entryBytes } from "../../src/cache/row-size.ts";
import { LocalChangeFeed } from "../../src/feed/local-feed.ts";
import { ArenaKvNode } from "../../src/kv/arena-node.ts";
import type { KvEntry, KvNode, ReadSlot, StoredRow } from "../../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../../src/kv/kv-node.ts";
import { RedisKvNode } from "../../src/kv/redis-node.ts";
import { encodeRow } from "../../src/kv/row-codec.ts";
import { KeyBatch } from "../../src/kv/key-batch.ts";
import { MetricsRegistry } from "../../src/ops/metrics.ts";
import { startDelayProxy } from "../../test/support/delay-proxy.ts";
import { Zipf } from "./zipf.ts";

export interface WorkerArgs {
  readonly originPort: number;
  readonly l2Port: number;
  readonly entities: number;
  readonly delayMs: number;
  readonly warmOps: number;
  readonly measureOps: number;
  readonly concurrency: number;
  /** Offered rate (lookups/s) of the open-loop latency runs, the same with caches on and off. */
  readonly rate: number;
  readonly latencySeconds: number;
  readonly hitSeconds: number;
  readonly rounds: number;
}

const args = JSON.parse(process.argv[2] ?? "{}") as WorkerArgs;
const keyOf = (i: number): string => `bench_view@1/entity_id=i${i}`;
const rowOf = (i: number): StoredRow => ({ ts: 1_700_000_000_000 + i, values: [i * 0.25, i % 977, i % 2 === 0, "porto", [i, i + 1]] });
const log = (line: string): void => {
  process.stderr.write(`  ${line}\n`);
};

async function load(node: KvNode, n: number): Promise<void> {
  const batch = 2000;
  for (let start = 0; start < n; start += batch) {
    const entries: KvEntry[] = [];
    for (let i = start; i < Math.min(n, start + batch); i++) entries.push({ key: keyOf(i), row: rowOf(i) });
    await node.putMany(entries);
  }
}

interface LoadStats {
  readonly ops: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
}

/** `concurrency` closed-loop clients doing one-key lookups until `ops` are done. */
async function closedLoop(node: KvNode, zipf: Zipf, ops: number, concurrency: number, record: boolean): Promise<LoadStats> {
  const latencies = record ? new Float64Array(ops) : undefined;
  let issued = 0;
  let failed = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (issued < ops) {
      const slot = issued++;
      const keys = [keyOf(zipf.next())];
      const t0 = performance.now();
      let got: ReadSlot[] | undefined = node.getManyNow(keys);
      if (got === undefined) got = await node.getMany(keys);
      else await undefined; // let other clients and I/O run between answers-now
      if (latencies) latencies[slot] = performance.now() - t0;
      if (got[0] === UNAVAILABLE || got[0] === undefined) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => client()));
  const seconds = (performance.now() - started) / 1000;
  if (!latencies) return { ops, seconds, p50: 0, p99: 0, failed };
  latencies.sort();
  return { ops, seconds, p50: latencies[Math.floor(ops * 0.5)]!, p99: latencies[Math.floor(ops * 0.99)]!, failed };
}

/**
 * Open loop: lookups arrive at `rate`/s for `seconds` whatever the answers
 * take, and each latency counts from its scheduled arrival (no coordinated
 * omission), so caches on and off are compared under the same offered load.
 */
async function openLoop(node: KvNode, zipf: Zipf, rate: number, seconds: number): Promise<LoadStats> {
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  const pending: Promise<void>[] = [];
  let failed = 0;
  const started = performance.now();
  const one = async (i: number, due: number): Promise<void> => {
    const keys = [keyOf(zipf.next())];
    let got: ReadSlot[] | undefined = node.getManyNow(keys);
    if (got === undefined) got = await node.getMany(keys);
    latencies[i] = performance.now() - due;
    if (got[0] === UNAVAILABLE || got[0] === undefined) failed++;
  };
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    // From the scheduled arrival when running late (no coordinated omission); from now when a timer woke early.
    pending.push(one(i, Math.min(due, performance.now())));
  }
  await Promise.all(pending);
  latencies.sort();
  return { ops: total, seconds: (performance.now() - started) / 1000, p50: latencies[Math.floor(total * 0.5)]!, p99: latencies[Math.floor(total * 0.99)]!, failed };
}

/** Single-key raw reads (stored bytes to a sink, the path lookups take), in a tight loop for `seconds`: reads per second. */
function rawThroughput(node: KvNode, keys: readonly (readonly string[])[], seconds: number): number {
  const raw = node.rawNow;
  if (raw === undefined) throw new Error(`${node.id} has no raw reads`);
  const batches = keys.map((k) => KeyBatch.of(k));
  let done = 0;
  let found = 0;
  let bytes = 0;
  const sink = { row: (_i: number, _b: Uint8Array, _v: DataView, start: number, end: number) => (bytes += end - start) };
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 1000; i++) {
      const b = batches[(done + i) % batches.length]!;
      found += raw.readRaw(b, b.all, 0, 1, sink);
    }
    done += 1000;
  }
  if (found !== done || bytes === 0) throw new Error(`only ${found} of ${done} raw reads were answered now`);
  return done / ((performance.now() - started) / 1000);
}

/** Single-key reads answered now, in a tight loop for `seconds`: reads per second. */
function nowThroughput(node: KvNode, keys: readonly (readonly string[])[], seconds: number): number {
  let done = 0;
  let sink = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 1000; i++) {
      const got = node.getManyNow(keys[(done + i) % keys.length]!);
      if (got !== undefined) sink++;
    }
    done += 1000;
  }
  if (sink !== done) throw new Error(`only ${sink} of ${done} reads were answered now`);
  return done / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const n = args.entities;
  const direct = await RedisKvNode.connect({ host: "127.0.0.1", port: args.originPort, commandTimeoutMs: 10_000 });
  let t = performance.now();
  await load(direct, n);
  log(`loaded ${n} rows into the origin in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  await direct.close();

  const proxy = await startDelayProxy({ targetPort: args.originPort, delayMs: args.delayMs });
  const origin = await RedisKvNode.connect({ host: "127.0.0.1", port: proxy.port, commandTimeoutMs: 10_000 });
  const zipf = new Zipf(n, 0.99, 7);

  // Caches on: L1 sized for ~10% of the rows, L2 local.
  const l1Bytes = Math.round(entryBytes(keyOf(n - 1), encodeRow(rowOf(n - 1)).byteLength) * n * 0.1);
  const registry = new MetricsRegistry();
  const m = cacheMetrics(registry);
  const l1 = new L1Cache({ maxBytes: l1Bytes, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: Date.now, onEvict: () => m.l1Evictions.inc() });
  const l2 = new L2Store({ where: { address: `127.0.0.1:${args.l2Port}` }, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: 5 });
  await l2.whenReady(5_000);
  const tier = new CacheTier(origin, { l1, l2, feed: new LocalChangeFeed("bench"), metrics: m, clock: Date.now });
  t = performance.now();
  await closedLoop(tier, zipf, args.warmOps, args.concurrency, false);
  log(`warm-up: ${args.warmOps} lookups in ${((performance.now() - t) / 1000).toFixed(1)} s; L1 holds ${l1.size} entries (${l1.bytes} of ${l1Bytes} B)`);
  const before = snapshot(m);
  t = performance.now();
  await closedLoop(tier, zipf, args.measureOps, args.concurrency, false);
  const after = snapshot(m);
  // What L1 held while the hit ratios were measured (the throughput rounds below re-warm it with 1,000 keys).
  const entriesMeasured = l1.size;
  log(`hit ratios measured over ${args.measureOps} lookups in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // Latency under the same offered load, same key sequence, caches on then off.
  // Collect the closed-loop phases' garbage first, so neither run pays for it.
  Bun.gc(true);
  const on = await openLoop(tier, new Zipf(n, 0.99, 11), args.rate, args.latencySeconds);
  Bun.gc(true);
  const off = await openLoop(origin, new Zipf(n, 0.99, 11), args.rate, args.latencySeconds);
  log(`open loop at ${args.rate}/s: caches on p50 ${on.p50.toFixed(3)} ms p99 ${on.p99.toFixed(2)} ms; caches off p50 ${off.p50.toFixed(2)} ms p99 ${off.p99.toFixed(2)} ms`);
  const d = (k: keyof ReturnType<typeof snapshot>) => after[k] - before[k];
  const lookups = args.measureOps;
  const l1Ratio = d("l1Hits") / lookups;
  const l2Lookups = d("l2Hits") + d("l2Misses");
  const l2Ratio = l2Lookups > 0 ? d("l2Hits") / l2Lookups : 0;
  const combined = 1 - d("originKeys") / lookups;
  log(`L1 ${(l1Ratio * 100).toFixed(1)}%, L2 ${(l2Ratio * 100).toFixed(1)}% of L1 misses, combined ${(combined * 100).toFixed(1)}%`);

  // L1-hit throughput against the embedded store, same keys, same process.
  const hot = Array.from({ length: 1000 }, (_, i) => [keyOf(i)] as const);
  await tier.getMany(hot.map((k) => k[0]));
  const arena = new ArenaKvNode("embedded");
  await load(arena, Math.min(n, 100_000));
  let bestTier = 0;
  let bestArena = 0;
  let bestTierRaw = 0;
  let bestArenaRaw = 0;
  for (let r = 0; r < args.rounds; r++) {
    bestArena = Math.max(bestArena, nowThroughput(arena, hot, args.hitSeconds));
    bestArenaRaw = Math.max(bestArenaRaw, rawThroughput(arena, hot, args.hitSeconds));
    // Re-warm with fresh TTLs: hot keys hit L1 constantly, so they were filled together long ago and
    // expire together; a plain re-read would leave the ones still fresh to expire mid-measurement.
    await tier.invalidate({ all: true });
    await tier.getMany(hot.map((k) => k[0]));
    bestTier = Math.max(bestTier, nowThroughput(tier, hot, args.hitSeconds));
    bestTierRaw = Math.max(bestTierRaw, rawThroughput(tier, hot, args.hitSeconds));
  }
  log(`answers-now throughput: L1 hits ${Math.round(bestTier)}/s, embedded store ${Math.round(bestArena)}/s; raw reads: L1 ${Math.round(bestTierRaw)}/s, embedded ${Math.round(bestArenaRaw)}/s`);

  await tier.close();
  await proxy.close();
  process.stdout.write(
    `${JSON.stringify({
      entities: n,
      delayMs: args.delayMs,
      rate: args.rate,
      warmOps: args.warmOps,
      measureOps: args.measureOps,
      l1Bytes,
      l1Entries: entriesMeasured,
      off,
      on,
      counts: Object.fromEntries(Object.keys(after).map((k) => [k, d(k as keyof typeof after)])),
      l1Ratio,
      l2Ratio,
      combined,
      originReadsPerLookup: d("originKeys") / lookups,
      l1HitRps: bestTier,
      embeddedRps: bestArena,
      l1RawRps: bestTierRaw,
      embeddedRawRps: bestArenaRaw,
    })}\n`,
  );
}

function snapshot(m: ReturnType<typeof cacheMetrics>) {
  return {
    l1Hits: m.l1Hits.value,
    l1Misses: m.l1Misses.value,
    l2Hits: m.l2Hits.value,
    l2Misses: m.l2Misses.value,
    l2ReadErrors: m.l2ReadErrors.value,
    l2WriteErrors: m.l2WriteErrors.value,
    originKeys: m.originKeys.value,
    originReads: m.originReads.value,
    coalesced: m.coalesced.value,
    l1Evictions: m.l1Evictions.value,
  };
}

await main();
process.exit(0);
