import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { Redis } from "ioredis";
import { CacheTier, cacheMetrics, L1Cache } from "../src/cache/index.ts";
import { L2_NOT_ASKED } from "../src/cache/l2-slot.ts";
import { type L2Options, L2Store } from "../src/cache/l2-store.ts";
import { LocalChangeFeed } from "../src/feed/local-feed.ts";
import { PublishingKvNode } from "../src/feed/publishing-node.ts";
import { RedisChangeFeed } from "../src/feed/redis-feed.ts";
import type { ChangeFeed } from "../src/feed/change-feed.ts";
import type { StoredRow } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { runKvContract } from "./kv-contract.ts";
import { type RedisProcess, startRedis, startReplicationGroup } from "./support/redis-process.ts";
import { TestOrigin } from "./support/test-origin.ts";

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });

/** Generous on a loaded machine: L2 calls here are bounded at 250 ms instead of the 5 ms default. */
const L2_TIMEOUT_MS = 250;

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await Bun.sleep(10);
  }
  return false;
}

interface Pod {
  readonly tier: CacheTier;
  /** What the server wires: writes publish to the feed after the tier took them. */
  readonly writer: PublishingKvNode;
  readonly origin: TestOrigin;
  readonly l1: L1Cache;
  readonly l2: L2Store;
  readonly feed: ChangeFeed;
  readonly metrics: ReturnType<typeof cacheMetrics>;
  close(): Promise<void>;
}

async function pod(name: string, l2Address: string, originAddress: string, sharedFeed = true, l2Options: Partial<L2Options> = {}): Promise<Pod> {
  const originNode = await RedisKvNode.connect({ host: "127.0.0.1", port: Number(originAddress.split(":")[1]) });
  const origin = new TestOrigin(originNode);
  const feed: ChangeFeed = sharedFeed ? new RedisChangeFeed(name, { where: { address: l2Address }, heartbeatMs: 200 }) : new LocalChangeFeed(name);
  if (feed instanceof RedisChangeFeed) expect(await feed.whenSubscribed(10_000)).toBe(true);
  const l2 = new L2Store({ where: { address: l2Address }, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: L2_TIMEOUT_MS, ...l2Options });
  expect(await l2.whenReady(10_000)).toBe(true);
  const l1 = new L1Cache({ maxBytes: 1 << 22, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: Date.now });
  const metrics = cacheMetrics(new MetricsRegistry());
  const tier = new CacheTier(origin, { l1, l2, feed, metrics, clock: Date.now });
  return {
    tier,
    writer: new PublishingKvNode(tier, feed),
    origin,
    l1,
    l2,
    feed,
    metrics,
    close: async () => {
      await tier.close();
      await feed.close();
    },
  };
}

describe("cache tiers over real Redis (L2 and origin)", () => {
  let l2Server: RedisProcess;
  let originServer: RedisProcess;
  let a: Pod;
  let b: Pod;
  beforeAll(async () => {
    [l2Server, originServer] = await Promise.all([startRedis({ extra: ["maxmemory 64mb", "maxmemory-policy allkeys-lru"] }), startRedis()]);
    a = await pod("pod-a", l2Server.address, originServer.address);
    b = await pod("pod-b", l2Server.address, originServer.address);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await Promise.all([l2Server?.stop(), originServer?.stop()]);
  });

  test("pod B reads from L2 what pod A's read filled, without the origin", async () => {
    await a.origin.rows.putMany([{ key: "share@1/k=i1", row: row(10, "x") }]);
    expect(await a.tier.getMany(["share@1/k=i1"])).toEqual([row(10, "x")]);
    expect(await waitFor(async () => (await a.l2.read(["share@1/k=i1"]))?.[0] !== undefined)).toBe(true);
    const before = b.origin.reads;
    expect(await b.tier.getMany(["share@1/k=i1"])).toEqual([row(10, "x")]);
    expect(b.origin.reads).toBe(before);
    expect(b.metrics.l2Hits.value).toBeGreaterThanOrEqual(1);
  });

  test("an L2 entry that is not a row (another program's, a torn write) is a miss: the origin answers, the batch's other keys too", async () => {
    await a.origin.rows.putMany([
      { key: "junk@1/k=i1", row: row(10, "origin") },
      { key: "junk@1/k=i2", row: row(10, "fine") },
    ]);
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      // A valid event-time header, then a byte MessagePack never uses.
      const header = Buffer.alloc(8);
      header.writeDoubleBE(5);
      await raw.set(b.l2.keyOf("junk@1/k=i1"), Buffer.concat([header, Buffer.from([0xc1])]));
    } finally {
      raw.disconnect();
    }
    const before = b.l2.stats().unreadableEntries;
    expect(await b.tier.getMany(["junk@1/k=i1", "junk@1/k=i2"])).toEqual([row(10, "origin"), row(10, "fine")]);
    expect(b.l2.stats().unreadableEntries).toBe(before + 1);
  });

  test("an L2 entry that decodes but is not a row (not an array of values, an event time that is not a time) is a miss too", async () => {
    const keys = ["junk2@1/k=i1", "junk2@1/k=i2", "junk2@1/k=i3"];
    await a.origin.rows.putMany(keys.map((key) => ({ key, row: row(10, "origin") })));
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      const at = (ts: number) => {
        const header = Buffer.alloc(8);
        header.writeDoubleBE(ts);
        return header;
      };
      // One MessagePack integer; a map; a row whose event time is +Infinity (it refused every write-through).
      await raw.set(b.l2.keyOf(keys[0]!), Buffer.concat([at(5), Buffer.from([0x05])]));
      await raw.set(b.l2.keyOf(keys[1]!), Buffer.concat([at(5), Buffer.from([0x81, 0xa1, 0x61, 0x01])]));
      await raw.set(b.l2.keyOf(keys[2]!), Buffer.concat([at(Number.POSITIVE_INFINITY), Buffer.from([0x91, 0xa1, 0x78])]));
    } finally {
      raw.disconnect();
    }
    const before = b.l2.stats().unreadableEntries;
    expect(await b.tier.getMany(keys)).toEqual(keys.map(() => row(10, "origin")));
    expect(b.l2.stats().unreadableEntries).toBe(before + 3);
  });

  test("L2's memory use and budget are read from the server for /metrics", async () => {
    expect(await waitFor(() => a.l2.stats().usedBytes > 0)).toBe(true);
    expect(a.l2.stats().maxBytes).toBe(64 * 1024 * 1024);
  });

  test("a late fill never overwrites a newer row in L2 (compare-event-time script)", async () => {
    expect(await a.l2.write([{ key: "late@1/k=i1", row: row(20, "new") }])).toBe(true);
    expect(await a.l2.write([{ key: "late@1/k=i1", row: row(10, "old") }])).toBe(true);
    expect(await a.l2.write([{ key: "late@1/k=i1", row: undefined }])).toBe(true);
    expect(await b.l2.read(["late@1/k=i1"])).toEqual([row(20, "new")]);
  });

  test("an L2 floor: a copy at least as new stays; otherwise a miss that refuses older fills", async () => {
    const k = "floor@1/k=i1";
    expect(await a.l2.write([{ key: k, row: row(5, "five") }])).toBe(true);
    // A replay of the same time (the origin ignored it as held): the row stays.
    expect(await a.l2.supersede([{ key: k, row: { ts: 5 } }])).toBe(true);
    expect(await a.l2.read([k])).toEqual([row(5, "five")]);
    expect(await a.l2.supersede([{ key: k, row: { ts: 6 } }])).toBe(true);
    expect(await a.l2.read([k])).toEqual([undefined]);
    expect(await a.l2.write([{ key: k, row: row(5, "five") }])).toBe(true);
    expect(await a.l2.read([k])).toEqual([undefined]);
    expect(await a.l2.write([{ key: k, row: row(7, "seven") }])).toBe(true);
    expect(await a.l2.read([k])).toEqual([row(7, "seven")]);
  });

  test("a write through pod A replaces pod B's L1 copy via the feed; B then reads the new row", async () => {
    await a.writer.putMany([{ key: "w@1/k=i1", row: row(100, "v100") }]);
    expect(await b.tier.getMany(["w@1/k=i1"])).toEqual([row(100, "v100")]);
    expect(b.tier.getManyNow(["w@1/k=i1"])).toEqual([row(100, "v100")]);
    const started = performance.now();
    await a.writer.putMany([{ key: "w@1/k=i1", row: row(200, "v200") }]);
    expect(await waitFor(() => b.tier.getManyNow(["w@1/k=i1"]) === undefined, 5_000)).toBe(true);
    console.log(`feed: pod B dropped its copy ${(performance.now() - started).toFixed(1)} ms after pod A's write returned`);
    const originReads = b.origin.reads;
    expect(await b.tier.getMany(["w@1/k=i1"])).toEqual([row(200, "v200")]);
    // Written through to L2 before the event went out: B did not need the origin.
    expect(b.origin.reads).toBe(originReads);
  });

  test("namespace invalidation reaches the other pod in under a second and hides L2's old entries", async () => {
    await a.origin.rows.putMany([{ key: "inv@1/k=i1", row: row(1, "a") }]);
    await a.tier.getMany(["inv@1/k=i1"]);
    await b.tier.getMany(["inv@1/k=i1"]);
    expect(b.tier.getManyNow(["inv@1/k=i1"])).toEqual([row(1, "a")]);
    const started = performance.now();
    await a.tier.invalidate({ view: "inv" });
    expect(await waitFor(() => b.tier.getManyNow(["inv@1/k=i1"]) === undefined, 5_000)).toBe(true);
    const ms = performance.now() - started;
    console.log(`invalidation: applied on pod B ${ms.toFixed(1)} ms after pod A's call`);
    expect(ms).toBeLessThan(1000);
    expect(await waitFor(() => b.l2.generations().views["inv"] === a.l2.generations().views["inv"])).toBe(true);
    expect(await b.l2.read(["inv@1/k=i1"])).toEqual([undefined]);
  });

  test("a read in flight across a push and an invalidation does not fill L2's new generation with the row it read", async () => {
    await a.origin.rows.putMany([{ key: "bump@1/k=i1", row: row(1, "old") }]);
    // Pod A's read takes the row, then waits (an origin a region away); meanwhile B pushes and the view is invalidated.
    const readsBefore = a.origin.reads;
    a.origin.hold(true);
    const reading = a.tier.getMany(["bump@1/k=i1"]);
    await waitFor(() => a.origin.reads > readsBefore);
    await b.writer.putMany([{ key: "bump@1/k=i1", row: row(2, "new") }]);
    await b.tier.invalidate({ view: "bump" });
    expect(await waitFor(() => a.l2.generations().views["bump"] === b.l2.generations().views["bump"])).toBe(true);
    a.origin.release();
    expect(await reading).toEqual([row(1, "old")]); // what it read, before the push
    await a.tier.settled();
    // L2's new generation was filled with "old" (no newer row there to refuse it): every pod served it PRESENT.
    expect(await b.l2.read(["bump@1/k=i1"])).toEqual([undefined]);
    expect(await b.tier.getMany(["bump@1/k=i1"])).toEqual([row(2, "new")]);
    expect(await a.tier.getMany(["bump@1/k=i1"])).toEqual([row(2, "new")]);
  });

  test("a push with a late row leaves floors in L2: another pod's read in flight cannot put the pre-write row back for every pod", async () => {
    await a.origin.rows.putMany([
      { key: "ignored@1/k=i1", row: row(5, "old") },
      { key: "ignored@1/k=i2", row: row(10, "kept") },
    ]);
    // Pod B's read takes i1's row, then waits; it comes back after A's push (and before B hears of it).
    const readsBefore = b.origin.reads;
    b.origin.hold(true);
    const reading = b.tier.getMany(["ignored@1/k=i1"]);
    await waitFor(() => b.origin.reads > readsBefore);
    // i2's row is older than the stored one, so the origin ignores it and A cannot tell which rows won: L2's copies
    // were deleted, and B's fill then wrote i1's pre-write row into the empty slot for every pod to serve.
    expect(await a.writer.putMany([{ key: "ignored@1/k=i1", row: row(6, "new") }, { key: "ignored@1/k=i2", row: row(1, "late") }])).toMatchObject({ written: 1, ignored: 1 });
    b.origin.release();
    expect(await reading).toEqual([row(5, "old")]);
    await b.tier.settled();
    // The floor reads as a miss; the origin answers the row it holds.
    expect(await a.l2.read(["ignored@1/k=i1", "ignored@1/k=i2"])).toEqual([undefined, undefined]);
    expect(await a.tier.getMany(["ignored@1/k=i1", "ignored@1/k=i2"])).toEqual([row(6, "new"), row(10, "kept")]);
    const c = await pod("pod-c", l2Server.address, originServer.address);
    try {
      expect(await c.tier.getMany(["ignored@1/k=i1"])).toEqual([row(6, "new")]);
    } finally {
      await c.close();
    }
  });

  test("a message lost on the feed is detected (sequence gap) and expires L1", async () => {
    await b.tier.getMany(["gap@1/k=i1"]);
    expect(b.tier.getManyNow(["gap@1/k=i1"])).toBeDefined();
    const gapsBefore = b.feed.state().gaps;
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      await raw.publish("quiver:feed", JSON.stringify({ o: "pod-z", s: 1, t: Date.now(), c: [] }));
      await raw.publish("quiver:feed", JSON.stringify({ o: "pod-z", s: 5, t: Date.now(), c: [] }));
    } finally {
      raw.disconnect();
    }
    expect(await waitFor(() => b.feed.state().gaps > gapsBefore)).toBe(true);
    // Read again before it is served fresh (kept as a grace copy).
    expect(b.tier.getManyNow(["gap@1/k=i1"])).toBeUndefined();
  });

  test("a pod restarted under the same name (its sequence back at 0) still has its lost messages detected", async () => {
    // A container restart keeps the pod's name (hostname, PID 1): the first life's feed is heard up to s = 3.
    const first = new RedisChangeFeed("pod-x", { where: { address: l2Server.address }, heartbeatMs: 200 });
    expect(await first.whenSubscribed(10_000)).toBe(true);
    for (let i = 0; i < 3; i++) first.publish([{ key: `x@1/k=${i}`, ts: i + 1, op: "put" }]);
    await first.close();
    const second = new RedisChangeFeed("pod-x", { where: { address: l2Server.address }, heartbeatMs: 200 });
    expect(await second.whenSubscribed(10_000)).toBe(true);
    await second.close();
    expect(second.origin).not.toBe(first.origin);
    await b.tier.getMany(["restart@1/k=i1"]);
    const gapsBefore = b.feed.state().gaps;
    // The second life's message 2 is lost; its heartbeat announces 3. Under the first life's origin (last 3) the
    // heartbeat read as old and no gap was seen: B kept the superseded copy for its TTL.
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      await raw.publish("quiver:feed", JSON.stringify({ o: second.origin, s: 1, t: Date.now(), c: [] }));
      await raw.publish("quiver:feed", JSON.stringify({ o: second.origin, s: 3, t: Date.now(), h: 1 }));
    } finally {
      raw.disconnect();
    }
    expect(await waitFor(() => b.feed.state().gaps > gapsBefore)).toBe(true);
  });

  test("an unreadable message on the feed is a gap that expires L1, never a thrown error or a half-read change", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      // Each from its own sender, in sequence: only its content is wrong.
      const bad = [
        { o: "pod-y1", s: 1, t: Date.now(), c: [1] },
        { o: "pod-y2", s: 1, t: Date.now(), c: [[5, "a", 0]] },
        { o: "pod-y3", s: 1, t: Date.now(), c: [["bad@1/k=i1", 1, 7]] },
        { o: "pod-y4", s: 1, t: Date.now(), i: { view: 3 } },
        { o: "pod-y5", s: 1, t: Date.now(), i: "all" },
      ];
      for (const m of bad) {
        await b.tier.getMany(["bad@1/k=i1"]);
        expect(b.tier.getManyNow(["bad@1/k=i1"])).toBeDefined();
        const gapsBefore = b.feed.state().gaps;
        await raw.publish("quiver:feed", JSON.stringify(m));
        expect(await waitFor(() => b.feed.state().gaps > gapsBefore)).toBe(true);
        expect(b.tier.getManyNow(["bad@1/k=i1"])).toBeUndefined();
      }
      // A sender's clock that is not a number is not a lag of NaN seconds.
      await raw.publish("quiver:feed", JSON.stringify({ o: "pod-y6", s: 1, t: "soon", c: [] }));
      await Bun.sleep(100);
    } finally {
      raw.disconnect();
      process.off("uncaughtException", onUncaught);
    }
    expect(uncaught).toEqual([]);
  });

  test("a broken feed connection is a gap: L1 is expired when the subscription comes back", async () => {
    await b.tier.getMany(["brk@1/k=i1"]);
    expect(b.tier.getManyNow(["brk@1/k=i1"])).toBeDefined();
    const gapsBefore = b.feed.state().gaps;
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      await raw.call("CLIENT", "KILL", "TYPE", "pubsub");
    } finally {
      raw.disconnect();
    }
    expect(await waitFor(() => b.feed.state().gaps > gapsBefore && b.feed.state().connected)).toBe(true);
    expect(b.tier.getManyNow(["brk@1/k=i1"])).toBeUndefined();
  });

  test("L2 hung (SIGSTOP): lookups go on from L1 and the origin, each L2 call bounded", async () => {
    await a.origin.rows.putMany([{ key: "hung@1/k=i1", row: row(3, "h") }]);
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    const mgets = async () => Number(/cmdstat_mget:calls=(\d+)/.exec(await raw.info("commandstats"))?.[1] ?? 0);
    const mgetsBefore = await mgets();
    l2Server.pause();
    try {
      const started = performance.now();
      const got = await b.tier.getMany(["hung@1/k=i1", "hung@1/k=i2"]);
      const ms = performance.now() - started;
      expect(got).toEqual([row(3, "h"), undefined]);
      console.log(`L2 stopped: a cold lookup took ${ms.toFixed(1)} ms with the L2 bound at ${L2_TIMEOUT_MS} ms`);
      expect(b.tier.getManyNow(["hung@1/k=i1"])).toEqual([row(3, "h")]);
      // Its connection stays "ready": it was reported connected (the pod not degraded) however long it hung.
      for (let i = 0; i < 5; i++) await b.l2.read(["hung@1/k=i3"]);
      expect(b.l2.state()).toMatchObject({ connected: false, error: expect.stringContaining("not answering") });
      // Now not asked on every miss: each waited out the bound, and ioredis held every command in its pipeline,
      // replaying them all when L2 came back. One call a second goes through as a probe.
      for (let i = 0; i < 50; i++) expect(Array.isArray(await b.l2.read([`hung@1/k=skip${i}`]))).toBe(false);
    } finally {
      l2Server.resume();
    }
    expect(await waitFor(async () => Array.isArray(await b.l2.read(["hung@1/k=i3"])) && b.l2.state().connected)).toBe(true);
    try {
      // The cold lookup's, the five that timed out, the probes and the last read: far fewer than the 50 skipped.
      expect((await mgets()) - mgetsBefore).toBeLessThan(30);
    } finally {
      raw.disconnect();
    }
  });

  test("a generation re-read that fails is retried, and L2 is not used meanwhile", async () => {
    await a.origin.rows.putMany([{ key: "gens@1/k=i1", row: row(1, "x") }]);
    expect(await b.tier.getMany(["gens@1/k=i1"])).toEqual([row(1, "x")]);
    expect(await waitFor(async () => (await b.l2.read(["gens@1/k=i1"]))?.[0] !== undefined)).toBe(true);
    const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      // The generations hash made unreadable (as a read that times out): B's re-read fails.
      const saved = await raw.hgetall("quiver:cache:generations");
      await raw.rename("quiver:cache:generations", "quiver:cache:generations-saved");
      await raw.set("quiver:cache:generations", "not a hash");
      expect(await b.l2.syncGenerations()).toBe(false);
      // Once failed it was never tried again: the pod read, as hits, entries an invalidation meant to hide.
      expect(await b.l2.read(["gens@1/k=i1"])).toBe(L2_NOT_ASKED);
      // Counted as misses, not as L2 errors.
      const errors = b.metrics.l2ReadErrors.value;
      const misses = b.metrics.l2Misses.value;
      b.l1.clear();
      expect(await b.tier.getMany(["gens@1/k=i1"])).toEqual([row(1, "x")]);
      expect(b.metrics.l2Misses.value).toBe(misses + 1);
      expect(b.metrics.l2ReadErrors.value).toBe(errors);
      expect(b.l2.state()).toMatchObject({ connected: false, error: expect.stringContaining("generations could not be re-read") });
      await raw.del("quiver:cache:generations");
      await raw.rename("quiver:cache:generations-saved", "quiver:cache:generations");
      expect(Object.keys(saved).length).toBeGreaterThan(0);
      expect(await waitFor(() => b.l2.state().connected)).toBe(true);
      expect(await b.l2.read(["gens@1/k=i1"])).toEqual([row(1, "x")]);
    } finally {
      raw.disconnect();
    }
  });

  test("L2 killed mid-run: no lookup fails; after a restart L2 hits come back by themselves", async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `kill@1/k=i${i}`);
    await a.origin.rows.putMany(keys.map((key, i) => ({ key, row: row(i + 1, i) })));
    let failures = 0;
    let lookups = 0;
    let stop = false;
    const loop = (async () => {
      for (let i = 0; !stop && i < 100_000; i++) {
        const k = keys[i % keys.length]!;
        // Pod B's L1 is cleared on every round so its reads exercise L2 and the origin.
        if (i % keys.length === 0) b.l1.clear();
        const [slot] = await b.tier.getMany([k]);
        lookups++;
        if (slot === UNAVAILABLE || slot === undefined) failures++;
        if (i % 10 === 0) await Bun.sleep(1);
      }
    })();
    await Bun.sleep(200);
    await l2Server.kill9();
    await Bun.sleep(500);
    await l2Server.restart();
    expect(await waitFor(() => b.tier.state().l2 !== "off" && (b.tier.state().l2 as { connected: boolean }).connected, 15_000)).toBe(true);
    const hitsAfterRestart = b.metrics.l2Hits.value;
    // L2 starts empty after the restart: B's own reads refill it, then hit it.
    expect(await waitFor(() => b.metrics.l2Hits.value > hitsAfterRestart + 20, 15_000)).toBe(true);
    stop = true;
    await loop;
    console.log(`L2 kill: ${lookups} lookups, ${failures} failed; L2 hits resumed after restart`);
    expect(failures).toBe(0);
    expect(await waitFor(() => b.feed.state().connected, 15_000)).toBe(true);
  });
});

test("a write L2 did not take is not hidden by L2's older copy (L2 restarted from its persistence), on the writing pod or another", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis({ appendOnly: true }), startRedis()]);
  const a = await pod("repair-a", l2Server.address, originServer.address);
  const b = await pod("repair-b", l2Server.address, originServer.address);
  const key = "rep@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(10, "old") }]);
    // Both pods read it: L2 and both L1s hold the old row.
    expect(await a.tier.getMany([key])).toEqual([row(10, "old")]);
    expect(await waitFor(async () => (await b.l2.read([key]))?.[0] !== undefined)).toBe(true);
    expect(await b.tier.getMany([key])).toEqual([row(10, "old")]);
    await l2Server.kill9();
    // Acknowledged by the origin while L2 is down: the write-through cannot reach it.
    expect(await a.writer.putMany([{ key, row: row(20, "new") }])).toMatchObject({ written: 1 });
    expect(a.tier.state().l2RepairPending).toBe(1);
    await l2Server.restart();
    expect(await waitFor(() => a.l2.connected && b.l2.connected && a.feed.state().connected && b.feed.state().connected, 15_000)).toBe(true);
    // Pod A never answers the old row again; the repair removes it from L2 and announces the key.
    for (let i = 0; i < 20; i++) {
      a.l1.clear();
      expect(await a.tier.getMany([key])).toEqual([row(20, "new")]);
    }
    expect(await waitFor(() => a.tier.state().l2RepairPending === 0, 15_000)).toBe(true);
    expect(a.metrics.l2Repaired.value).toBe(1);
    // Pod B (its L1 cleared by the feed's gap, or its copy superseded by the announcement) reads the new row.
    expect(await waitFor(async () => JSON.stringify(await b.tier.getMany([key])) === JSON.stringify([row(20, "new")]), 10_000)).toBe(true);
    b.l1.clear();
    expect(await b.tier.getMany([key])).toEqual([row(20, "new")]);
  } finally {
    await Promise.allSettled([a.close(), b.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("an L2 that comes back older than writes it took (restarted from a snapshot) is abandoned by every pod", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("run-a", l2Server.address, originServer.address);
  const b = await pod("run-b", l2Server.address, originServer.address);
  const key = "run@1/k=i1";
  const raw = new Redis({ host: "127.0.0.1", port: l2Server.port, lazyConnect: true });
  try {
    await a.writer.putMany([{ key, row: row(5, "old") }]);
    expect(await waitFor(async () => JSON.stringify((await b.l2.read([key]))?.[0]) === JSON.stringify(row(5, "old")))).toBe(true);
    await raw.connect();
    expect(await raw.save()).toBe("OK");
    raw.disconnect();
    // Written through to L2 after its snapshot: L2 then restarts from the snapshot (or a lagging replica is promoted).
    expect(await a.writer.putMany([{ key, row: row(6, "new") }])).toMatchObject({ written: 1 });
    expect(await waitFor(async () => JSON.stringify((await b.l2.read([key]))?.[0]) === JSON.stringify(row(6, "new")))).toBe(true);
    await l2Server.kill9();
    await l2Server.restart();
    expect(await waitFor(() => a.l2.state().connected && b.l2.state().connected, 15_000)).toBe(true);
    // The feed's gap cleared both L1s; L2 holds the snapshot's row 5 again, which both pods served for the L2 TTL.
    a.l1.clear();
    b.l1.clear();
    expect(await a.tier.getMany([key])).toEqual([row(6, "new")]);
    expect(await b.tier.getMany([key])).toEqual([row(6, "new")]);
    expect(a.l2.generations().all).toBe(b.l2.generations().all);
    // The noted run id evicted (allkeys-lru): a pod connecting then bumps nothing (its bump reached no other pod,
    // which kept reading the old generation under which the new one's writes were not seen).
    const evict = new Redis({ host: "127.0.0.1", port: l2Server.port });
    try {
      expect(await evict.del("quiver:cache:run")).toBe(1);
    } finally {
      evict.disconnect();
    }
    const c = await pod("run-c", l2Server.address, originServer.address);
    try {
      expect(c.l2.generations().all).toBe(a.l2.generations().all);
    } finally {
      await c.close();
    }
  } finally {
    raw.disconnect();
    await Promise.allSettled([a.close(), b.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("an invalidation after L2 lost its generations (flushed) still hides the view's old entries from every pod", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("gen-a", l2Server.address, originServer.address);
  const b = await pod("gen-b", l2Server.address, originServer.address);
  const key = "gen@1/k=i1";
  const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
  try {
    await a.tier.invalidate({ view: "gen" });
    await a.tier.invalidate({ view: "gen" });
    expect(await waitFor(() => b.l2.generations().views.gen === 2)).toBe(true);
    await raw.flushall();
    await a.origin.rows.putMany([{ key, row: row(1, "before") }]);
    expect(await b.tier.getMany([key])).toEqual([row(1, "before")]);
    expect(await waitFor(async () => (await a.l2.read([key]))?.[0] !== undefined)).toBe(true);
    // A backfill writes to the origin directly, then the operator invalidates the view.
    await a.origin.rows.putMany([{ key, row: row(2, "after") }]);
    await a.tier.invalidate({ view: "gen" });
    expect(a.l2.generations().views.gen).toBe(3);
    expect(await waitFor(() => b.l2.generations().views.gen === 3)).toBe(true);
    expect(await a.tier.getMany([key])).toEqual([row(2, "after")]);
    expect(await waitFor(async () => JSON.stringify(await b.tier.getMany([key])) === JSON.stringify([row(2, "after")]))).toBe(true);
    // A pod's sync writes back the generations L2 lost, so a pod started later uses them.
    await raw.flushall();
    expect(await b.l2.syncGenerations()).toBe(true);
    expect(await raw.hget("quiver:cache:generations", "gen")).toBe("3");
  } finally {
    raw.disconnect();
    await Promise.allSettled([a.close(), b.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("generations L2 lost to eviction (allkeys-lru) are written back by the running pods: a pod started later reads under them, and its invalidation hides the view's old entries from every pod", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("evg-a", l2Server.address, originServer.address, true, { generationsCheckMs: 100 });
  const key = "evg@1/k=i1";
  const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
  let b: Pod | undefined;
  try {
    await a.tier.invalidate({ view: "evg" });
    await a.origin.rows.putMany([{ key, row: row(1, "before") }]);
    expect(await a.tier.getMany([key])).toEqual([row(1, "before")]);
    expect(await waitFor(async () => (await a.l2.read([key]))?.[0] !== undefined)).toBe(true);
    // Untouched since the invalidation, the hash is what allkeys-lru evicts first (measured: 200k fills of
    // 100 bytes into an 8 MB L2 evicted it and the noted run id); removed here as eviction does.
    expect(await raw.del("quiver:cache:generations", "quiver:cache:run")).toBe(2);
    expect(await waitFor(async () => (await raw.hget("quiver:cache:generations", "evg")) === "1" && (await raw.exists("quiver:cache:run")) === 1, 5_000)).toBe(true);
    b = await pod("evg-b", l2Server.address, originServer.address, true, { generationsCheckMs: 100 });
    expect(b.l2.generations()).toEqual(a.l2.generations());
    // A backfill writes to the origin directly, then the operator invalidates the view through pod B.
    await a.origin.rows.putMany([{ key, row: row(2, "after") }]);
    await b.tier.invalidate({ view: "evg" });
    expect(await waitFor(() => a.l2.generations().views.evg === 2)).toBe(true);
    a.l1.clear();
    b.l1.clear();
    expect(await a.tier.getMany([key])).toEqual([row(2, "after")]);
    expect(await b.tier.getMany([key])).toEqual([row(2, "after")]);
  } finally {
    raw.disconnect();
    await Promise.allSettled([a.close(), b?.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a pod that started while L2 had lost its generations moves to the ones in use once written back, and drops what it read under the old ones", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  // Pod A checks its generations only when told to here: pod B starts before they are written back.
  const a = await pod("adopt-a", l2Server.address, originServer.address, true, { generationsCheckMs: 3_600_000 });
  const key = "adopt@1/k=i1";
  const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
  let b: Pod | undefined;
  let c: Pod | undefined;
  try {
    await a.tier.invalidate({ view: "adopt" });
    await raw.del("quiver:cache:generations");
    b = await pod("adopt-b", l2Server.address, originServer.address, true, { generationsCheckMs: 100 });
    c = await pod("adopt-c", l2Server.address, originServer.address, true, { generationsCheckMs: 100 });
    expect(b.l2.generations().views.adopt ?? 0).toBe(0);
    const other = "adopt@1/k=i2";
    await a.origin.rows.putMany([
      { key, row: row(1, "old") },
      { key: other, row: row(1, "other") },
    ]);
    // B fills L2 under the generation it knows (0); C reads another key of the view from there.
    expect(await b.tier.getMany([key, other])).toEqual([row(1, "old"), row(1, "other")]);
    expect(await waitFor(async () => (await c!.l2.read([other]))?.[0] !== undefined)).toBe(true);
    expect(await c.tier.getMany([other])).toEqual([row(1, "other")]);
    // Pod A's write goes through to L2 under generation 1, where B and C do not read: C, which does not hold
    // the key, would read B's old copy under 0 for the L2 TTL.
    expect(await a.writer.putMany([{ key, row: row(2, "new") }])).toMatchObject({ written: 1 });
    // Pod A's check writes its generations back; B and C move to them and drop what they read under 0.
    await a.l2.checkGenerations();
    expect(await waitFor(() => b!.l2.generations().views.adopt === 1 && c!.l2.generations().views.adopt === 1, 5_000)).toBe(true);
    expect(c.l1.has(other)).toBe(false);
    expect(await c.tier.getMany([key])).toEqual([row(2, "new")]);
    expect(await b.tier.getMany([key])).toEqual([row(2, "new")]);
  } finally {
    raw.disconnect();
    await Promise.allSettled([a.close(), b?.close(), c?.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a generation taken at a re-read (not the periodic check) drops what L1 read under the old one too", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  // No periodic checks: the generations move only when a re-read (here after another view's invalidation) finds them.
  const slow = { generationsCheckMs: 3_600_000 };
  const a = await pod("resync-a", l2Server.address, originServer.address, true, slow);
  const key = "resync@1/k=i1";
  const raw = new Redis({ host: "127.0.0.1", port: l2Server.port });
  let b: Pod | undefined;
  let c: Pod | undefined;
  try {
    await a.tier.invalidate({ view: "resync" });
    await raw.del("quiver:cache:generations");
    b = await pod("resync-b", l2Server.address, originServer.address, true, slow);
    await a.origin.rows.putMany([{ key, row: row(1, "old") }]);
    // B fills L2 under the generation it knows (0); pod A's write goes through to L2 under 1.
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    expect(await waitFor(async () => (await b!.l2.read([key]))?.[0] !== undefined)).toBe(true);
    expect(await a.writer.putMany([{ key, row: row(2, "new") }])).toMatchObject({ written: 1 });
    await a.tier.settled();
    // C starts after the write (it heard no event) and reads under 0: B's old copy, from L2 into L1.
    c = await pod("resync-c", l2Server.address, originServer.address, true, slow);
    expect(await c.tier.getMany([key])).toEqual([row(1, "old")]);
    expect(c.l1.has(key)).toBe(true);
    // A writes its generations back; another view's invalidation has C re-read them and move to 1.
    await a.l2.checkGenerations();
    await a.tier.invalidate({ view: "resync_other" });
    expect(await waitFor(() => c!.l2.generations().views.resync === 1, 5_000)).toBe(true);
    // What C read under 0 goes, as when the periodic check moves it: it served the overwritten row for the L1 TTL.
    expect(c.l1.has(key)).toBe(false);
    expect(await c.tier.getMany([key])).toEqual([row(2, "new")]);
  } finally {
    raw.disconnect();
    await Promise.allSettled([a.close(), b?.close(), c?.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a write through a pod that has not yet taken another pod's invalidation reaches L2 where the others read, and where it reads itself", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  // A takes generations only when told (no periodic check): the invalidation's message is still on its way to it.
  const a = await pod("lag-a", l2Server.address, originServer.address, true, { generationsCheckMs: 3_600_000 });
  const b = await pod("lag-b", l2Server.address, originServer.address);
  const c = await pod("lag-c", l2Server.address, originServer.address);
  const key = "lag@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(1, "old") }]);
    // C reads the key under generation 0, filling it there.
    expect(await c.tier.getMany([key])).toEqual([row(1, "old")]);
    await c.tier.settled();
    // B's invalidation bumps the view's generation in L2; C takes it (dropping its L1 copy), A not yet.
    await b.l2.bumpGeneration({ view: "lag" });
    expect(await c.l2.syncGenerations()).toBe(true);
    expect(c.l1.has(key)).toBe(false);
    expect([a.l2.generations().views.lag, b.l2.generations().views.lag, c.l2.generations().views.lag]).toEqual([undefined, 1, 1]);
    // B reads the key under generation 1, filling it there.
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    await b.tier.settled();
    // A's write, acknowledged, written through and announced; C has heard of it (it holds no copy: no floor).
    const heard = c.feed.state().received;
    expect(await a.writer.putMany([{ key, row: row(2, "new") }])).toMatchObject({ written: 1, ignored: 0 });
    expect(await waitFor(() => c.feed.state().received > heard)).toBe(true);
    // C reads under generation 1: A wrote through under 0 only, and C read B's copy of the replaced row (kept for
    // its L1 TTL; L2's for 300 s).
    expect(await c.tier.getMany([key])).toEqual([row(2, "new")]);
    // A, still under 0 and holding no copy, reads its own write there (not C's old copy).
    expect(a.l1.has(key)).toBe(false);
    expect(await a.tier.getMany([key])).toEqual([row(2, "new")]);
  } finally {
    await Promise.allSettled([a.close(), b.close(), c.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a delete through a pod that has not yet taken another pod's invalidation removes the key where the others read it too", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  // A takes generations only when told (no periodic check): the invalidation's message is still on its way to it.
  const a = await pod("lagdel-a", l2Server.address, originServer.address, true, { generationsCheckMs: 3_600_000 });
  const b = await pod("lagdel-b", l2Server.address, originServer.address);
  const c = await pod("lagdel-c", l2Server.address, originServer.address);
  const key = "lagdel@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(1, "old") }]);
    // B's invalidation bumps the view's generation in L2; C takes it, A not yet.
    await b.l2.bumpGeneration({ view: "lagdel" });
    expect(await c.l2.syncGenerations()).toBe(true);
    expect([a.l2.generations().views.lagdel, b.l2.generations().views.lagdel, c.l2.generations().views.lagdel]).toEqual([undefined, 1, 1]);
    // B reads the key under generation 1, filling it there.
    expect(await b.tier.getMany([key])).toEqual([row(1, "old")]);
    await b.tier.settled();
    // A's delete, acknowledged, removed from L2 and announced; C has heard of it (it holds no copy: no floor).
    const heard = c.feed.state().received;
    expect(await a.writer.deleteMany([key])).toBe(1);
    expect(await waitFor(() => c.feed.state().received > heard)).toBe(true);
    // C reads under generation 1: A removed the key under 0 only, and C read B's copy of the deleted row (kept for
    // its L1 TTL; L2's for 300 s).
    expect(await c.tier.getMany([key])).toEqual([undefined]);
    // A, still under 0 and holding no copy, reads the delete there too.
    expect(await a.tier.getMany([key])).toEqual([undefined]);
  } finally {
    await Promise.allSettled([a.close(), b.close(), c.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a registry reload while L2 is down answers 200 and keeps the new registry; the view's invalidation reaches L2 when it is back", async () => {
  const l2Server = await startRedis({ appendOnly: true });
  const dir = mkdtempSync(join(tmpdir(), "quiver-reload-l2-"));
  const registryPath = join(dir, "registry.yaml");
  const example = await Bun.file("src/registry/example-registry.yaml").text();
  writeFileSync(registryPath, example);
  const q = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "0", "--grpc-port", "-1", "--cache-l1", "on", "--cache-l2", l2Server.address, "--cache-l2-timeout", "250ms"], {}));
  const raw = () => new Redis({ host: "127.0.0.1", port: l2Server.port });
  try {
    const l2 = () => q.cache!.state().l2 as { connected: boolean };
    expect(l2().connected).toBe(true);
    await l2Server.kill9();
    expect(await waitFor(() => !l2().connected)).toBe(true);
    // fraud_signals gets a feature appended: a change under one version, whose cached rows are dropped everywhere.
    const appended = example.replace('      - { name: device_ids, type: "string[]" }', '      - { name: device_ids, type: "string[]" }\n      - { name: reloaded, type: int64 }');
    expect(appended).not.toBe(example);
    writeFileSync(registryPath, appended);
    const res = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(res.status).toBe(200);
    expect(q.registry.current.views.get("fraud_signals")!.featureIndex.has("reloaded")).toBe(true);
    expect(q.cache!.state().l2RepairPending).toBe(1);
    await l2Server.restart();
    expect(await waitFor(() => q.cache!.state().l2RepairPending === 0, 15_000)).toBe(true);
    const client = raw();
    try {
      expect(await client.hget("quiver:cache:generations", "fraud_signals")).toBe("1");
    } finally {
      client.disconnect();
    }
  } finally {
    await q.close();
    await l2Server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("while the feed is not heard, L1 holds what it reads only briefly: another pod's write shows within seconds, not the L1 TTL", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("deaf-a", l2Server.address, originServer.address);
  const b = await pod("deaf-b", l2Server.address, originServer.address);
  const key = "deaf@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(1, "before") }]);
    expect(await b.tier.getMany([key])).toEqual([row(1, "before")]);
    const gaps = b.feed.state().gaps;
    await l2Server.kill9();
    // The loss is a gap at once (it was one only once the feed came back): L1 is expired now.
    expect(await waitFor(() => b.feed.state().gaps > gaps && !b.feed.hearing)).toBe(true);
    expect(b.tier.getManyNow([key])).toBeUndefined();
    expect(await b.tier.getMany([key])).toEqual([row(1, "before")]);
    expect(b.tier.getManyNow([key])).toEqual([row(1, "before")]);
    // Pod A's write cannot be announced (the feed is down); B's copy, read while deaf, lives 1 s instead of 60.
    await a.writer.putMany([{ key, row: row(2, "after") }]);
    const wrote = performance.now();
    expect(await waitFor(async () => JSON.stringify(await b.tier.getMany([key])) === JSON.stringify([row(2, "after")]), 15_000)).toBe(true);
    console.log(`feed down: another pod's write seen after ${(performance.now() - wrote).toFixed(0)} ms (L1 fills capped at 1 s)`);
  } finally {
    await Promise.allSettled([a.close(), b.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
}, 60_000);

test("a write that fails partway leaves floors in L2: another pod's read that began before it cannot put the old row back there for every pod", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("part-a", l2Server.address, originServer.address);
  const c = await pod("part-c", l2Server.address, originServer.address);
  const d = await pod("part-d", l2Server.address, originServer.address);
  const key = "part@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(1, "old") }]);
    // Pod D's lookup reads the row, then waits (another shard of its batch is slow).
    d.origin.hold(true);
    const dRead = d.tier.getMany([key]);
    expect(await waitFor(() => d.origin.reads > 0)).toBe(true);
    // Pod A's push lands on this key's shard, then fails (another shard timed out): answered 503, nothing published.
    const put = a.origin.putMany.bind(a.origin);
    a.origin.putMany = async (entries, signal) => {
      await a.origin.rows.putMany(entries, signal);
      throw new Error("shard-2: timed out");
    };
    await expect(a.writer.putMany([{ key, row: row(2, "new") }])).rejects.toThrow("timed out");
    a.origin.putMany = put;
    // D's read ends and fills L2 with the row it read before the write landed.
    d.origin.release();
    expect(await dRead).toEqual([row(1, "old")]);
    await d.tier.settled();
    // Storage holds the new row: a pod that does not hold the key must not get the old one from L2 (it did, for the L2 TTL).
    expect(await c.tier.getMany([key])).toEqual([row(2, "new")]);
    expect(await a.tier.getMany([key])).toEqual([row(2, "new")]);
  } finally {
    await Promise.allSettled([a.close(), c.close(), d.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a write that fails without landing leaves its keys L2 misses until the floor's TTL or a retry that lands", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const a = await pod("nolanding-a", l2Server.address, originServer.address);
  const c = await pod("nolanding-c", l2Server.address, originServer.address);
  const key = "nolanding@1/k=i1";
  try {
    await a.origin.rows.putMany([{ key, row: row(1, "old") }]);
    expect(await c.tier.getMany([key])).toEqual([row(1, "old")]);
    const put = a.origin.putMany.bind(a.origin);
    a.origin.putMany = async () => {
      throw new Error("shard-1: timed out");
    };
    await expect(a.writer.putMany([{ key, row: row(2, "new") }])).rejects.toThrow("timed out");
    // The floor at 2 refuses the origin's row (1): each L1 miss on any pod reads the origin (removed, the first refilled L2).
    const before = c.origin.reads;
    for (let i = 0; i < 5; i++) {
      c.l1.clear();
      expect(await c.tier.getMany([key])).toEqual([row(1, "old")]);
      await c.tier.settled();
    }
    expect(c.origin.reads - before).toBe(5);
    // The client's retry lands: L2 takes the row at the floor's time, and serves it again.
    a.origin.putMany = put;
    await a.writer.putMany([{ key, row: row(2, "new") }]);
    await a.tier.settled();
    expect(await c.l2.read([key])).toEqual([row(2, "new")]);
  } finally {
    await Promise.allSettled([a.close(), c.close()]);
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

test("a pod whose ring is not where the keys are fills no L2 entries (its misses made a ready pod answer existing keys NOT_FOUND)", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const originNode = await RedisKvNode.connect({ host: "127.0.0.1", port: originServer.port });
  const l2 = new L2Store({ where: { address: l2Server.address }, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: L2_TIMEOUT_MS });
  let stale = true;
  const tier = new CacheTier(originNode, { l2, feed: new LocalChangeFeed("stale-pod"), metrics: cacheMetrics(new MetricsRegistry()), clock: Date.now, sharedFills: () => !stale });
  try {
    expect(await l2.whenReady(10_000)).toBe(true);
    await originNode.putMany([{ key: "sf@1/k=i1", row: row(1, "x") }]);
    // A miss (the key lives where this pod's ring does not look) and a row: neither reaches L2.
    expect(await tier.getMany(["sf@1/k=i2", "sf@1/k=i1"])).toEqual([undefined, row(1, "x")]);
    await Bun.sleep(50);
    expect(await l2.read(["sf@1/k=i2", "sf@1/k=i1"])).toEqual([undefined, undefined]);
    stale = false;
    expect(await tier.getMany(["sf@1/k=i1"])).toEqual([row(1, "x")]);
    expect(await waitFor(async () => (await l2.read(["sf@1/k=i1"]))?.[0] !== undefined)).toBe(true);
  } finally {
    await tier.close();
    await Promise.allSettled([l2Server.stop(), originServer.stop()]);
  }
});

runKvContract("CacheTier (L1 + L2 Redis) over RedisKvNode", async () => {
  const [l2Server, originServer] = await Promise.all([startRedis(), startRedis()]);
  const p = await pod("contract", l2Server.address, originServer.address, false);
  return {
    node: p.tier,
    dispose: async () => {
      await p.close();
      await Promise.all([l2Server.stop(), originServer.stop()]);
    },
  };
});

test("L2 found through Sentinel: reads and compare-event-time writes", async () => {
  const group = await startReplicationGroup({ replicas: 0, sentinels: 1, masterName: "quiver-l2-test" });
  const l2 = new L2Store({ where: { sentinels: [group.sentinels[0]!.address], masterName: "quiver-l2-test" }, ttlMs: 60_000, negativeTtlMs: 5_000, timeoutMs: L2_TIMEOUT_MS });
  try {
    expect(await l2.whenReady(10_000)).toBe(true);
    expect(l2.state()).toMatchObject({ address: "sentinel master quiver-l2-test", connected: true });
    expect(await l2.write([{ key: "sent@1/k=i1", row: row(5, "five") }])).toBe(true);
    expect(await l2.write([{ key: "sent@1/k=i1", row: row(4, "four") }])).toBe(true);
    expect(await l2.read(["sent@1/k=i1", "sent@1/k=i2"])).toEqual([row(5, "five"), undefined]);
  } finally {
    await l2.close();
    await group.stop();
  }
}, 60_000);

test("a stall of this process (not of L2) does not connect a healthy L2 again: its answers are read first", async () => {
  const server = await startRedis();
  const l2 = new L2Store({ where: { address: server.address }, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: L2_TIMEOUT_MS });
  const raw = new Redis({ host: "127.0.0.1", port: server.port });
  /** The ids of L2's connections, as the server lists them: a new id is a new connection. */
  const connections = async () => ((await raw.call("CLIENT", "LIST")) as string).split("\n").filter((l) => l.includes("name=quiver-cache")).map((l) => /id=(\d+)/.exec(l)?.[1]);
  try {
    expect(await l2.whenReady(10_000)).toBe(true);
    const before = await connections();
    expect(before).toHaveLength(1);
    // Reads in flight while the event loop is held for 4 s (a long synchronous task, a GC): L2 answered them at once,
    // but their timers fire first when the loop comes back. Counted as L2's silence, they had it connected again.
    const reads = Array.from({ length: 8 }, () => l2.read(["stall@1/k=i1"]));
    const until = performance.now() + 4000;
    while (performance.now() < until) {}
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 8 }, () => [undefined]));
    expect(l2.state()).toMatchObject({ connected: true });
    // A reconnection, had there been one, is made within ~50 ms (its first retry).
    await Bun.sleep(500);
    expect(await connections()).toEqual(before);
  } finally {
    raw.disconnect();
    await l2.close();
    await server.stop();
  }
}, 30_000);
