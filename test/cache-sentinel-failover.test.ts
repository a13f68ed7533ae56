import { afterAll, beforeAll, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { CacheTier, cacheMetrics, L1Cache } from "../src/cache/index.ts";
import { L2Store } from "../src/cache/l2-store.ts";
import { PublishingKvNode } from "../src/feed/publishing-node.ts";
import { RedisChangeFeed } from "../src/feed/redis-feed.ts";
import type { StoredRow } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { type RedisProcess, type ReplicationGroup, startRedis, startReplicationGroup } from "./support/redis-process.ts";
import { TestOrigin } from "./support/test-origin.ts";

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await Bun.sleep(20);
  }
  return false;
}

interface Pod {
  readonly tier: CacheTier;
  readonly writer: PublishingKvNode;
  readonly l1: L1Cache;
  readonly l2: L2Store;
  readonly feed: RedisChangeFeed;
  close(): Promise<void>;
}

async function pod(name: string, group: ReplicationGroup, originAddress: string): Promise<Pod> {
  const where = { sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName };
  const origin = new TestOrigin(await RedisKvNode.connect({ host: "127.0.0.1", port: Number(originAddress.split(":")[1]) }));
  const feed = new RedisChangeFeed(name, { where, heartbeatMs: 200 });
  expect(await feed.whenSubscribed(10_000)).toBe(true);
  const l2 = new L2Store({ where, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: 250 });
  expect(await l2.whenReady(10_000)).toBe(true);
  const l1 = new L1Cache({ maxBytes: 1 << 22, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: Date.now });
  const tier = new CacheTier(origin, { l1, l2, feed, metrics: cacheMetrics(new MetricsRegistry()), clock: Date.now });
  return {
    tier,
    writer: new PublishingKvNode(tier, feed),
    l1,
    l2,
    feed,
    close: async () => {
      await tier.close();
      await feed.close();
    },
  };
}

/** Connections each pod makes to the feed's and L2's Redis, by the names they give themselves. */
async function quiverClients(address: string): Promise<string[]> {
  const [host, port] = address.split(":");
  const raw = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
  try {
    const list = (await raw.call("CLIENT", "LIST")) as string;
    return list
      .split("\n")
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? "")
      .filter((n) => n.startsWith("quiver-"))
      .sort();
  } finally {
    raw.disconnect();
  }
}

let group: ReplicationGroup;
let originServer: RedisProcess;
beforeAll(async () => {
  [group, originServer] = await Promise.all([startReplicationGroup({ replicas: 1, sentinels: 1, masterName: "quiver-l2-failover", downAfterMs: 1000, failoverTimeoutMs: 3000 }), startRedis()]);
});
afterAll(async () => {
  await Promise.allSettled([group?.stop(), originServer?.stop()]);
});

test("the feed's and L2's Redis fails over under Sentinel away from a hung primary: every pod follows, and hears another pod's writes again", async () => {
  const a = await pod("fo-a", group, originServer.address);
  const b = await pod("fo-b", group, originServer.address);
  const key = "fo@1/k=i1";
  const sentinel = new Redis({ host: group.sentinels[0]!.host, port: group.sentinels[0]!.port });
  try {
    await a.writer.putMany([{ key, row: row(1, "old") }]);
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    // The primary hangs (a frozen VM, a blackholed link): its sockets stay open, nothing answers.
    group.primary.pause();
    const promoted = group.replicas[0]!.address;
    expect(await waitFor(async () => ((await sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.masterName)) as string[]).join(":") === promoted, 20_000)).toBe(true);
    const failedOverAt = performance.now();
    // Pods go on serving (L2 reads on their misses); both reach the promoted replica with all three connections.
    const all = ["quiver-cache", "quiver-cache", "quiver-feed-pub", "quiver-feed-pub", "quiver-feed-sub", "quiver-feed-sub"];
    const followed = await waitFor(async () => {
      await Promise.all([a.l2.read([key]), b.l2.read([key])]);
      return JSON.stringify(await quiverClients(promoted)) === JSON.stringify(all) && a.feed.state().connected && b.feed.state().connected;
    }, 20_000);
    console.log(`sentinel failover from a hung primary: ${followed ? `pods followed ${Math.round(performance.now() - failedOverAt)} ms after it` : `pods never followed (on the promoted replica: ${JSON.stringify(await quiverClients(promoted))})`}`);
    expect(followed).toBe(true);
    expect(await waitFor(() => a.l2.state().connected && b.l2.state().connected, 10_000)).toBe(true);
    // Pod B holds the row for its whole TTL again (the feed is heard); pod A's write reaches it through the feed.
    b.l1.clear();
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    expect(await a.writer.putMany([{ key, row: row(2, "new") }])).toMatchObject({ written: 1 });
    const ackAt = performance.now();
    expect(await waitFor(async () => JSON.stringify(await b.tier.getMany([key])) === JSON.stringify([row(2, "new")]), 3_000)).toBe(true);
    console.log(`after the failover, pod A's write seen on pod B ${Math.round(performance.now() - ackAt)} ms after its acknowledgement`);
  } finally {
    group.primary.resume();
    sentinel.disconnect();
    await Promise.allSettled([a.close(), b.close()]);
  }
}, 90_000);

test("a feed whose Redis hangs without closing the connection is a gap within seconds: another pod's write shows then, not after the L1 TTL", async () => {
  const feedServer = await startRedis();
  const where = { address: feedServer.address };
  const mk = async (name: string) => {
    const origin = new TestOrigin(await RedisKvNode.connect({ host: "127.0.0.1", port: originServer.port }));
    const feed = new RedisChangeFeed(name, { where, heartbeatMs: 200 });
    expect(await feed.whenSubscribed(10_000)).toBe(true);
    const l1 = new L1Cache({ maxBytes: 1 << 22, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: Date.now });
    const tier = new CacheTier(origin, { l1, feed, metrics: cacheMetrics(new MetricsRegistry()), clock: Date.now });
    return { tier, feed, writer: new PublishingKvNode(tier, feed) };
  };
  const a = await mk("hang-a");
  const b = await mk("hang-b");
  const key = "hang@1/k=i1";
  try {
    await a.writer.putMany([{ key, row: row(1, "old") }]);
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    feedServer.pause();
    // Acknowledged by the origin; its message waits in a socket the hung server does not read.
    expect(await a.writer.putMany([{ key, row: row(2, "new") }])).toMatchObject({ written: 1 });
    const ackAt = performance.now();
    const seen = await waitFor(async () => JSON.stringify(await b.tier.getMany([key])) === JSON.stringify([row(2, "new")]), 10_000);
    console.log(`feed Redis hung: pod A's write ${seen ? `seen on pod B after ${Math.round(performance.now() - ackAt)} ms` : "not seen on pod B within 10 s (its L1 TTL is 60 s)"}`);
    expect(seen).toBe(true);
    expect(b.feed.state()).toMatchObject({ connected: false });
    expect(b.feed.state().gaps).toBeGreaterThan(0);
    feedServer.resume();
    expect(await waitFor(() => a.feed.state().connected && b.feed.state().connected, 15_000)).toBe(true);
  } finally {
    feedServer.resume();
    await Promise.allSettled([a.tier.close(), b.tier.close(), a.feed.close(), b.feed.close()]);
    await feedServer.stop();
  }
}, 60_000);
