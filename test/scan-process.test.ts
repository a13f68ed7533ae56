import { afterEach, describe, expect, test } from "bun:test";
import type { KvEntry, KvNode, ScanPage } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { scanPasses } from "../src/kv/scan-passes.ts";
import { ScanRestartError } from "../src/kv/storage-errors.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { guardShard, IGNORE_OBSERVER } from "../src/resilience/shards.ts";
import type { Discovery } from "../src/shard/discovery.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { SentinelDiscovery } from "../src/shard/sentinel-discovery.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { VectorIndexes } from "../src/vector/vector-indexes.ts";
import { compositeShape } from "./support/composite-shape.ts";
import { TestFeed } from "./support/test-feed.ts";
import { type RedisProcess, startRedis, startReplicationGroup } from "./support/redis-process.ts";
import { prng, unitVector } from "./support/vectors.ts";

/**
 * Scans over Redis shards (KvNode.scan: vector index builds and catch-ups,
 * demo data, warm-up) across a restart or a failover of a shard's primary. A
 * SCAN cursor means something only to the process that issued it (its hash
 * seed and table size): handed to another process it skips keys silently, and
 * a vector catch-up then removed the keys it had not seen from the index.
 * The process changes at a fixed page, from a tap on the scans, not after a
 * sleep. Without the fix the loops here end with keys missing (an earlier
 * run: see the commit).
 */

const TUNING = { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 };
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function server(): Promise<RedisProcess> {
  // AOF fsynced at every write: a restart keeps every row (what these tests are about is the cursor, not the disk).
  const s = await startRedis({ appendOnly: true, extra: ["appendfsync always"] });
  cleanups.push(() => s.stop());
  return s;
}

async function shard(id: string, discovery: Discovery): Promise<{ set: ReplicaSet; node: KvNode }> {
  const set = await ReplicaSet.connect({ id, discovery, ...TUNING });
  cleanups.push(() => set.close());
  return { set, node: guardShard(set, TUNING, IGNORE_OBSERVER) };
}

const staticShard = (id: string, s: RedisProcess) => shard(id, new StaticDiscovery({ primary: s.address, replicas: [] }));

/** `store` with `after(pages)` run after each scan page it answers, before the caller sees the page; `passes` counts scans begun at "0". */
function tapScans(store: KvNode, after: (pages: number) => Promise<void> | void): { node: KvNode; passes: () => number } {
  let pages = 0;
  let passes = 0;
  const node = compositeShape(store, {
    scan: async (cursor, count, prefix) => {
      if (cursor === "0") passes++;
      const page = await store.scan(cursor, count, prefix);
      await after(++pages);
      return page;
    },
  });
  return { node, passes: () => passes };
}

async function fill(store: KvNode, n: number, key: (i: number) => string, values: (i: number) => KvEntry["row"]["values"]): Promise<void> {
  for (let start = 0; start < n; start += 1000) {
    const batch: KvEntry[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) batch.push({ key: key(i), row: { ts: 1000, values: values(i) } });
    await store.putMany(batch);
  }
}

/** Every key of a whole scan of `store` (pages of `count`), started again from "0" on ScanRestartError. */
function scanAll(store: KvNode, count: number, prefix = ""): Promise<Set<string>> {
  return scanPasses(async () => {
    const seen = new Set<string>();
    let cursor = "0";
    do {
      const page: ScanPage = await store.scan(cursor, count, prefix);
      for (const k of page.keys) seen.add(k);
      cursor = page.cursor;
    } while (cursor !== "0");
    return seen;
  });
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe("a Redis scan cursor names the process that issued it", () => {
  test("a page asked with a cursor of a process since restarted is refused with ScanRestartError (scan_restart), never given", async () => {
    const a = await server();
    const node = await RedisKvNode.connect({ host: a.host, port: a.port, commandTimeoutMs: 2000 });
    cleanups.push(() => node.close());
    await fill(node, 2000, (i) => `r@1/k=i${i}`, (i) => [i]);
    const first = await node.scan("0", 100, "r@1/");
    expect(first.cursor).toMatch(/^\d+@[0-9a-f]{40}$/);
    // Same process: the cursor goes on.
    const second = await node.scan(first.cursor, 100, "r@1/");
    expect(second.keys.length).toBeGreaterThan(0);
    await a.kill9();
    await a.restart();
    const error = await retryUntilAnswered(() => node.scan(second.cursor, 100, "r@1/"));
    expect(error).toBeInstanceOf(ScanRestartError);
    expect((error as ScanRestartError).code).toBe("scan_restart");
    expect((error as ScanRestartError).retryable).toBe(false);
    // A cursor that names no process is refused as well; "0" starts a scan on whatever answers.
    expect(await node.scan("17", 100, "r@1/").catch((e: unknown) => e)).toBeInstanceOf(ScanRestartError);
    expect((await scanAll(node, 100, "r@1/")).size).toBe(2000);
  }, 60_000);

  test("a ShardedStore scan across a restart of a shard's primary, started again on ScanRestartError, lists every key", async () => {
    const [a, b] = await Promise.all([server(), server()]);
    const [A, B] = await Promise.all([staticShard("A", a), staticShard("B", b)]);
    const store = new ShardedStore([
      { id: "A", weight: 1, node: A.node },
      { id: "B", weight: 1, node: B.node },
    ]);
    const KEYS = 20_000;
    const key = (i: number) => `s@1/k=i${i}`;
    await fill(store, KEYS, key, (i) => [i]);
    // Shard A (member 0) is scanned first: restarted after its 20th page, about 4,000 of its ~10,000 keys in.
    let restarted = false;
    const tapped = tapScans(store, async (pages) => {
      if (pages !== 20 || restarted) return;
      restarted = true;
      await a.kill9();
      await a.restart();
    });
    const seen = await scanAll(tapped.node, 100);
    const missing = Array.from({ length: KEYS }, (_, i) => key(i)).filter((k) => !seen.has(k));
    console.log(`sharded scan across a restart: ${missing.length} of ${KEYS} keys missing, ${tapped.passes()} pass(es)`);
    expect(restarted).toBe(true);
    expect(missing.length).toBe(0);
    expect(tapped.passes()).toBe(2);
  }, 90_000);

  test("a ShardedStore scan across a Sentinel failover (the replica promoted) is started again and lists every key", async () => {
    const group = await startReplicationGroup({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 });
    cleanups.push(() => group.stop());
    const A = await shard("A", new SentinelDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName }));
    const store = new ShardedStore([{ id: "A", weight: 1, node: A.node }]);
    const KEYS = 20_000;
    const key = (i: number) => `f@1/k=i${i}`;
    // Written with WAIT 1: the replica holds every row before the primary dies.
    await fill(store, KEYS, key, (i) => [i]);
    const replica = group.replicas[0]!.address;
    let failedOver = false;
    const tapped = tapScans(store, async (pages) => {
      if (pages !== 40 || failedOver) return;
      failedOver = true;
      await group.primary.kill9();
      await until("the replica's promotion", () => A.set.primaryAddress === replica);
    });
    const seen = await scanAll(tapped.node, 100);
    const missing = Array.from({ length: KEYS }, (_, i) => key(i)).filter((k) => !seen.has(k)).length;
    console.log(`sharded scan across a failover: ${missing} of ${KEYS} keys missing, ${tapped.passes()} pass(es)`);
    expect(failedOver).toBe(true);
    expect(missing).toBe(0);
    expect(tapped.passes()).toBe(2);
  }, 90_000);
});

describe("a vector index scan across a restart of a shard's primary", () => {
  test("a catch-up whose shard restarts mid-scan scans again and removes no live key from the index", async () => {
    const registry = compileRegistry({
      entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
      featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 32 } }],
    });
    const [a, b] = await Promise.all([server(), server()]);
    const [A, B] = await Promise.all([staticShard("A", a), staticShard("B", b)]);
    const store = new ShardedStore([
      { id: "A", weight: 1, node: A.node },
      { id: "B", weight: 1, node: B.node },
    ]);
    const KEYS = 8000;
    const key = (i: number) => `items@1/item_id=i${i}`;
    await fill(store, KEYS, key, (i) => [unitVector(8, prng(i))]);
    let armed = false;
    let armedPages = 0;
    let restarts = 0;
    // Pages of 256: shard A (scanned first, ~4,000 keys) restarts after the 6th page of the catch-up's first pass.
    const tapped = tapScans(store, async () => {
      if (!armed || ++armedPages !== 6) return;
      restarts++;
      await a.kill9();
      await a.restart();
    });
    const feed = new TestFeed();
    const metrics = new MetricsRegistry();
    const vectors = new VectorIndexes({ store: tapped.node, feed, metrics, snapshotIntervalMs: 0, embedders: { modelPath: "" } });
    cleanups.push(() => vectors.close());
    await vectors.start(registry);
    await vectors.idle();
    const live = () => vectors.get("items")!.labels.liveKeys();
    expect([...live()].length).toBe(KEYS);
    // Pages count from here: a gap makes the index catch up with a scan of the store.
    armed = true;
    const before = tapped.passes();
    feed.listener!.onGap("test");
    await vectors.idle();
    expect(restarts).toBe(1);
    const kept = new Set(live());
    const lost = Array.from({ length: KEYS }, (_, i) => key(i)).filter((k) => !kept.has(k)).length;
    console.log(`vector catch-up across a restart: ${lost} of ${KEYS} keys taken out of the index, ${tapped.passes() - before} pass(es)`);
    expect(lost).toBe(0);
    expect(tapped.passes() - before).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

/** The error `work` ends with once the server answers again (a reconnect may fail a few calls first), or undefined. */
async function retryUntilAnswered(work: () => Promise<unknown>): Promise<unknown> {
  for (let i = 0; i < 100; i++) {
    const error = await work().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof Error) || error instanceof ScanRestartError) return error;
    await Bun.sleep(50);
  }
  return new Error("the server did not answer again");
}
