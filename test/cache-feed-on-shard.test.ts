import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";
import { type RedisProcess, type ReplicationGroup, startRedis, startReplicationGroup } from "./support/redis-process.ts";

/**
 * Several pods over Redis shards with no L2 (the reference Kubernetes
 * manifest's shape): the change feed runs on the topology's first shard, so a
 * push through pod A drops pod B's L1 copy within milliseconds instead of
 * after B's L1 TTL (60 s; 51 s measured before the feed ran there). Two pods
 * wired by buildQuiver in this process, over real redis-server shards.
 */

const VIEW = "driver_hourly_stats";
const FEATURE = `${VIEW}:conv_rate`;
/** Enough drivers that both shards hold some. */
const DRIVERS = Array.from({ length: 16 }, (_, i) => 5001 + i);
/** Only a hang misses it: the feed delivers in milliseconds, the L1 TTL is 30-60 s. */
const VISIBLE_WITHIN_MS = 10_000;

async function json(q: Quiver, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await q.http.app.request(path, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json", "x-quiver-timeout-ms": "5000" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Event times that only go forward, across the tests sharing the shards (an older one would be ignored). */
let lastTs = Date.now() - 3_600_000;
const nextTs = (): number => (lastTs += 1000);

async function push(q: Quiver, rate: number): Promise<void> {
  const ts = nextTs();
  const res = await json(q, "/v1/push", { featureView: VIEW, rows: DRIVERS.map((driver_id) => ({ driver_id, conv_rate: rate, event_timestamp: ts })) });
  expect(res).toMatchObject({ status: 200, body: { written: DRIVERS.length } });
}

/** The conv_rate each driver has on `q`. */
async function rates(q: Quiver): Promise<unknown[]> {
  const res = await json(q, "/v1/lookup", { features: [FEATURE], entities: { driver_id: DRIVERS } });
  expect(res.status).toBe(200);
  return (res.body["rows"] as { values: unknown[] }[]).map((r) => r.values[0]);
}

async function metric(q: Quiver, pattern: RegExp): Promise<number> {
  const text = await (await q.http.app.request("/metrics")).text();
  return Number(pattern.exec(text)?.[1] ?? Number.NaN);
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await Bun.sleep(10);
  }
  return false;
}

/** Connections named by Quiver's change feed on a Redis. */
async function feedClients(server: RedisProcess): Promise<number> {
  const raw = new Redis({ host: server.host, port: server.port, maxRetriesPerRequest: 1 });
  try {
    return ((await raw.call("CLIENT", "LIST")) as string).split("\n").filter((line) => /name=quiver-feed-/.test(line)).length;
  } finally {
    raw.disconnect();
  }
}

async function twoPods(topology: string, extra: readonly string[] = []): Promise<[Quiver, Quiver]> {
  const args = ["--topology", topology, "--demo-entities", "0", "--grpc-port", "-1", ...extra];
  return Promise.all([buildQuiver(loadConfig(args, {}), { podId: "pod-a" }), buildQuiver(loadConfig(args, {}), { podId: "pod-b" })]);
}

/**
 * Pod B reads the drivers (filling its L1) and then reads them again from L1; pod A pushes new
 * values; answers how long B took to show them (Infinity: not within VISIBLE_WITHIN_MS).
 */
async function pushSeenAcross(a: Quiver, b: Quiver, rate: number): Promise<{ ms: number; l1Hits: number; superseded: number }> {
  const old = await rates(b);
  const hitsBefore = await metric(b, /^quiver_cache_hits_total\{tier="l1"\} (\S+)$/m);
  expect(await rates(b)).toEqual(old);
  const l1Hits = (await metric(b, /^quiver_cache_hits_total\{tier="l1"\} (\S+)$/m)) - (Number.isNaN(hitsBefore) ? 0 : hitsBefore);
  const supersededBefore = await metric(b, /^quiver_cache_keys_superseded_total (\S+)$/m);
  await push(a, rate);
  const acked = performance.now();
  const seen = await waitFor(async () => (await rates(b)).every((v) => v === rate), VISIBLE_WITHIN_MS);
  const ms = seen ? performance.now() - acked : Number.POSITIVE_INFINITY;
  const superseded = (await metric(b, /^quiver_cache_keys_superseded_total (\S+)$/m)) - (Number.isNaN(supersededBefore) ? 0 : supersededBefore);
  return { ms, l1Hits, superseded };
}

describe("the change feed over the topology's first shard (no L2)", () => {
  let s1: RedisProcess;
  let s2: RedisProcess;
  let dir: string;

  beforeAll(async () => {
    [s1, s2] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-feed-shard-"));
    writeFileSync(join(dir, "topology.yaml"), ["shards:", `  - { name: s1, primary: "${s1.address}", writeAcks: 0 }`, `  - { name: s2, primary: "${s2.address}", writeAcks: 0 }`, ""].join("\n"));
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled([s1?.stop(), s2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a push through pod A replaces pod B's cached rows within milliseconds, over the first shard's Redis", async () => {
    const [a, b] = await twoPods(join(dir, "topology.yaml"));
    try {
      for (const q of [a, b]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      expect(b.summary).toContain(`change feed on shard s1 (${s1.address})`);
      const ready = await json(b, "/readyz");
      expect(ready.body["feed"]).toMatchObject({ kind: "redis", connected: true, runsOn: `shard s1 (${s1.address})` });
      expect(ready.body["degraded"]).toEqual([]);
      expect(await metric(b, /^quiver_feed_connected (\S+)$/m)).toBe(1);
      // Two connections per pod on the first shard, none on the second.
      expect([await feedClients(s1), await feedClients(s2)]).toEqual([4, 0]);

      await push(a, 0.25);
      const { ms, l1Hits, superseded } = await pushSeenAcross(a, b, 0.75);
      console.log(`no L2, feed on shard s1: pod A's push of ${DRIVERS.length} rows seen on pod B ${ms === Number.POSITIVE_INFINITY ? `not within ${VISIBLE_WITHIN_MS} ms` : `${Math.round(ms)} ms`} after its acknowledgement`);
      // B answered the old rows from L1 before the push: what changed them was an invalidation, not an expiry.
      expect(l1Hits).toBe(DRIVERS.length);
      expect(ms).toBeLessThan(VISIBLE_WITHIN_MS);
      expect(superseded).toBe(DRIVERS.length);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);

  test("a claim pushed on pod A is matched on pod B: B's vector index follows the feed on the shard", async () => {
    const [a, b] = await twoPods(join(dir, "topology.yaml"));
    const text = "The river ferry is secretly steered by a trained flock of cormorants";
    const embed = new HashedNgramEmbedder(384);
    const topMatch = async (): Promise<unknown> => {
      const res = await json(b, "/v1/match", { view: "claims", text, k: 1 });
      return res.status === 200 ? (res.body["matches"] as { entity: { claim_id: number } }[])[0]?.entity.claim_id : undefined;
    };
    try {
      for (const q of [a, b]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      const res = await json(a, "/v1/push", { featureView: "claims", rows: [{ claim_id: 900_001, text, verdict: "false", source: "telegram", language: "en", first_seen: 1, cluster: -1, embedding: embed.embedNow(text) }] });
      expect(res).toMatchObject({ status: 200, body: { written: 1 } });
      const pushed = performance.now();
      // Only a hang misses it; with the in-process feed pod B never indexed it (no gap, so no catch-up scan).
      expect(await waitFor(async () => (await topMatch()) === 900_001, VISIBLE_WITHIN_MS)).toBe(true);
      console.log(`no L2, feed on shard s1: a claim pushed on pod A matched on pod B ${Math.round(performance.now() - pushed)} ms after`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);

  test("--cache-feed off keeps the in-process feed: pod B goes on answering its L1 copy of rows pod A replaced", async () => {
    const [a, b] = await twoPods(join(dir, "topology.yaml"), ["--cache-feed", "off"]);
    try {
      expect(b.feed.state()).toMatchObject({ kind: "local", connected: true });
      expect(b.summary).toContain("change feed in-process: other pods' writes show here after up to the L1 TTL (60s)");
      expect((await json(b, "/readyz")).body["feed"]).toMatchObject({ kind: "local", runsOn: "in-process" });
      expect(await feedClients(s1)).toBe(0);
      await push(a, 1.25);
      expect(await rates(b)).toEqual(DRIVERS.map(() => 1.25));
      await push(a, 1.5);
      expect(await rates(a)).toEqual(DRIVERS.map(() => 1.5));
      // Nothing tells B: its L1 copies (fresh for 30-60 s) answer.
      await Bun.sleep(200);
      expect(await rates(b)).toEqual(DRIVERS.map(() => 1.25));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);

  test("--cache-feed names another Redis: the feed runs there, not on the shard", async () => {
    const elsewhere = await startRedis();
    const [a, b] = await twoPods(join(dir, "topology.yaml"), ["--cache-feed", elsewhere.address]);
    try {
      for (const q of [a, b]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      expect((await json(b, "/readyz")).body["feed"]).toMatchObject({ kind: "redis", runsOn: elsewhere.address });
      expect([await feedClients(s1), await feedClients(elsewhere)]).toEqual([0, 4]);
      await push(a, 2.25);
      const { ms, l1Hits } = await pushSeenAcross(a, b, 2.5);
      expect(l1Hits).toBe(DRIVERS.length);
      expect(ms).toBeLessThan(VISIBLE_WITHIN_MS);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await elsewhere.stop();
    }
  }, 60_000);
});

describe("the change feed over a first shard found through Sentinel", () => {
  let group: ReplicationGroup;
  let s2: RedisProcess;
  let dir: string;

  beforeAll(async () => {
    [group, s2] = await Promise.all([startReplicationGroup({ replicas: 0, sentinels: 1, masterName: "feed-shard-1" }), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-feed-sentinel-"));
    writeFileSync(
      join(dir, "topology.yaml"),
      ["shards:", `  - { name: s1, masterName: ${group.masterName}, sentinels: ["${group.sentinels[0]!.address}"], writeAcks: 0 }`, `  - { name: s2, primary: "${s2.address}", writeAcks: 0 }`, ""].join("\n"),
    );
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled([group?.stop(), s2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the feed reaches the shard's primary through its Sentinels and carries pod A's push to pod B", async () => {
    const [a, b] = await twoPods(join(dir, "topology.yaml"));
    try {
      for (const q of [a, b]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      expect((await json(b, "/readyz")).body["feed"]).toMatchObject({ kind: "redis", connected: true, runsOn: `shard s1 (sentinel ${group.masterName})` });
      expect(await feedClients(group.primary)).toBe(4);
      await push(a, 3.25);
      const { ms, l1Hits } = await pushSeenAcross(a, b, 3.5);
      console.log(`no L2, feed on Sentinel shard s1: pod A's push seen on pod B ${ms === Number.POSITIVE_INFINITY ? "not within the bound" : `${Math.round(ms)} ms`} after its acknowledgement`);
      expect(l1Hits).toBe(DRIVERS.length);
      expect(ms).toBeLessThan(VISIBLE_WITHIN_MS);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);
});

describe("a topology reload that removes the first shard", () => {
  let t1: RedisProcess;
  let t2: RedisProcess;
  let dir: string;

  beforeAll(async () => {
    [t1, t2] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-feed-reload-"));
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled([t1?.stop(), t2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("moves the feed to the new first shard: a pod started on the new file is heard, and retiring the old shard leaves it connected", async () => {
    const file = join(dir, "topology.yaml");
    const shard = (name: string, s: RedisProcess) => `  - { name: ${name}, primary: "${s.address}", writeAcks: 0 }`;
    writeFileSync(file, ["shards:", shard("t1", t1), shard("t2", t2), ""].join("\n"));
    const args = ["--topology", file, "--demo-entities", "0", "--grpc-port", "-1"];
    const a = await buildQuiver(loadConfig(args, {}), { podId: "pod-a" });
    let c: Quiver | undefined;
    try {
      expect(await waitFor(() => a.feed.state().connected, 10_000)).toBe(true);
      await push(a, 4.25);
      // t1 retired: its keys move to t2, and the topology's first shard is t2 from now on.
      writeFileSync(file, ["shards:", shard("t2", t2), ""].join("\n"));
      expect((await a.http.app.request("/admin/topology/reload", { method: "POST" })).status).toBe(200);
      expect(await waitFor(async () => ((await (await a.http.app.request("/admin/topology/migration")).json()) as { state?: string }).state === "done", 30_000)).toBe(true);
      expect(await waitFor(() => a.feed.state().connected, 10_000)).toBe(true);
      expect((await json(a, "/readyz")).body["feed"]).toMatchObject({ runsOn: `shard t2 (${t2.address})` });
      // A pod started now reads the new file: its feed runs on t2. A must hear it (it went on answering its L1
      // copies, 'connected' on t1, with nothing in degraded).
      c = await buildQuiver(loadConfig(args, {}), { podId: "pod-c" });
      expect(await waitFor(() => c!.feed.state().connected, 10_000)).toBe(true);
      const { ms, l1Hits } = await pushSeenAcross(c, a, 4.5);
      expect(l1Hits).toBe(DRIVERS.length);
      expect(ms).toBeLessThan(VISIBLE_WITHIN_MS);
      // The retired shard's server stops: the feed, on t2, still carries C's next push to A (a feed left on t1 would
      // not: A's copies were then served for their TTL), and nothing is degraded.
      await t1.stop();
      const after = await pushSeenAcross(c, a, 4.75);
      expect(after.ms).toBeLessThan(VISIBLE_WITHIN_MS);
      expect(a.feed.state().connected).toBe(true);
      expect((await json(a, "/readyz")).body["degraded"]).toEqual([]);
    } finally {
      await Promise.all([a.close(), c?.close()]);
    }
  }, 90_000);
});

describe("a push that fails on one shard", () => {
  let u1: RedisProcess;
  let u2: RedisProcess;
  let dir: string;

  beforeAll(async () => {
    [u1, u2] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-feed-partial-"));
    // A short failover window: a write u2 cannot take fails in well under a second instead of being retried for 10 s.
    const shard = (name: string, s: RedisProcess) => `  - { name: ${name}, primary: "${s.address}", writeAcks: 0, failoverWindowMs: 200 }`;
    writeFileSync(join(dir, "topology.yaml"), ["shards:", shard("u1", u1), shard("u2", u2), ""].join("\n"));
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled([u1?.stop(), u2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("still tells the other pods of the rows the other shard took: they do not answer their old copies", async () => {
    const [a, b] = await twoPods(join(dir, "topology.yaml"));
    try {
      for (const q of [a, b]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      await push(a, 5.25);
      expect(await rates(b)).toEqual(DRIVERS.map(() => 5.25));
      // u2 goes down (the feed, on u1, stays up); A's push is refused (503), but u1 took its share.
      await u2.kill9();
      const res = await json(a, "/v1/push", { featureView: VIEW, rows: DRIVERS.map((driver_id) => ({ driver_id, conv_rate: 5.5, event_timestamp: nextTs() })) });
      expect(res.status).toBe(503);
      const onA = await rates(a);
      const written = DRIVERS.filter((_, i) => onA[i] === 5.5);
      expect(written.length).toBeGreaterThan(0);
      expect(written.length).toBeLessThan(DRIVERS.length);
      // B answered its L1 copies of those rows (5.25) for their whole TTL: nothing told it they changed.
      const seen = await waitFor(async () => {
        const onB = await rates(b);
        return DRIVERS.every((d, i) => !written.includes(d) || onB[i] === 5.5);
      }, VISIBLE_WITHIN_MS);
      expect(seen).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);
});

describe("a topology file whose shards are listed in another order", () => {
  let v1: RedisProcess;
  let v2: RedisProcess;
  let dir: string;

  beforeAll(async () => {
    [v1, v2] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-feed-order-"));
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled([v1?.stop(), v2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("runs the feed on the same shard: a pod started on the reordered file hears, and is heard by, the pods started before", async () => {
    const shard = (name: string, s: RedisProcess) => `  - { name: ${name}, primary: "${s.address}", writeAcks: 0 }`;
    const before = join(dir, "before.yaml");
    const after = join(dir, "after.yaml");
    // The same shards, the same ring: only the order in the file differs (an edit, a generator that sorts otherwise).
    writeFileSync(before, ["shards:", shard("v1", v1), shard("v2", v2), ""].join("\n"));
    writeFileSync(after, ["shards:", shard("v2", v2), shard("v1", v1), ""].join("\n"));
    const args = (file: string) => ["--topology", file, "--demo-entities", "0", "--grpc-port", "-1"];
    const [a, c] = await Promise.all([buildQuiver(loadConfig(args(before), {}), { podId: "pod-a" }), buildQuiver(loadConfig(args(after), {}), { podId: "pod-c" })]);
    try {
      for (const q of [a, c]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
      const runsOn = async (q: Quiver) => ((await json(q, "/readyz")).body["feed"] as { runsOn: string }).runsOn;
      expect(await runsOn(c)).toBe(await runsOn(a));
      await push(a, 6.25);
      const { ms, l1Hits } = await pushSeenAcross(c, a, 6.5);
      expect(l1Hits).toBe(DRIVERS.length);
      expect(ms).toBeLessThan(VISIBLE_WITHIN_MS);
    } finally {
      await Promise.all([a.close(), c.close()]);
    }
  }, 60_000);
});
