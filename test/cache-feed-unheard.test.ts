import { expect, test } from "bun:test";
import { CacheTier, cacheMetrics, L1Cache } from "../src/cache/index.ts";
import { RedisChangeFeed } from "../src/feed/redis-feed.ts";
import type { StoredRow } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { startRedis } from "./support/redis-process.ts";
import { TestOrigin } from "./support/test-origin.ts";

/**
 * What a pod's L1 may keep of writes it could not hear of over the change
 * feed (README, Caching: "Feed down"), around the edges of hearing: the
 * first subscription, and a pod first heard after some of its messages were
 * lost. Real Redis for the feed and the origin; L1 on a fake clock.
 */

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });

async function waitFor(check: () => boolean, timeoutMs = 15_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (check()) return true;
    await Bun.sleep(10);
  }
  return false;
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/**
 * Pod B on a real origin Redis, its L1 on a fake clock (TTL 60 s, feed-down TTL 1 s), started while its
 * feed's Redis is down (it serves anyway, degraded): `feedServer.restart()` brings the feed up.
 */
async function podWithFeedDown() {
  const [feedServer, originServer] = await Promise.all([startRedis(), startRedis()]);
  await feedServer.kill9();
  const originNode = await RedisKvNode.connect({ host: "127.0.0.1", port: originServer.port });
  const origin = new TestOrigin(originNode);
  const feed = new RedisChangeFeed("pod-b", { where: { address: feedServer.address }, heartbeatMs: 200 });
  const clock = fakeClock();
  const l1 = new L1Cache({ maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: clock.now });
  const tier = new CacheTier(origin, { l1, feed, metrics: cacheMetrics(new MetricsRegistry()), clock: clock.now, feedDownTtlMs: 1_000 });
  const close = async () => {
    await tier.close();
    await feed.close();
    await Promise.allSettled([feedServer.stop(), originServer.stop()]);
  };
  return { feedServer, origin, feed, clock, tier, close };
}

test("a read that began before the feed was first heard fills L1 only for the feed-down TTL, not the whole TTL", async () => {
  const { feedServer, origin, feed, clock, tier, close } = await podWithFeedDown();
  const key = "unheard@1/k=i1";
  try {
    await origin.rows.putMany([{ key, row: row(1, "before") }]);
    expect(feed.hearing).toBe(false);
    // A lookup reads the row, and its answer is held up on the way back (a slow origin).
    origin.hold(true);
    const read = tier.getMany([key]);
    expect(await waitFor(() => origin.readsTaken === 1)).toBe(true);
    // Another pod's write: its message cannot reach this pod, whose feed is not up.
    await origin.rows.putMany([{ key, row: row(2, "after") }]);
    // The feed's Redis is back; the pod subscribes for the first time.
    await feedServer.restart();
    expect(await waitFor(() => feed.hearing)).toBe(true);
    origin.release();
    expect(await read).toEqual([row(1, "before")]);
    // Read while the feed was not heard: trusted no longer than a read made then (1 s), not for the TTL (30-60 s).
    clock.advance(1_500);
    expect(tier.getManyNow([key])).toBeUndefined();
    expect(await tier.getMany([key])).toEqual([row(2, "after")]);
  } finally {
    await close();
  }
}, 60_000);

test("a write begun before the feed was first heard refreshes L1 only for the feed-down TTL, not the whole TTL", async () => {
  const { feedServer, origin, feed, clock, tier, close } = await podWithFeedDown();
  const key = "unheard-write@1/k=i1";
  try {
    await origin.rows.putMany([{ key, row: row(1, "first") }]);
    expect(feed.hearing).toBe(false);
    // Held in L1 (read while the feed was not heard).
    expect(await tier.getMany([key])).toEqual([row(1, "first")]);
    // This pod's write lands on the origin, and its acknowledgement is held up on the way back (a slow shard of the batch).
    origin.holdWrites();
    const write = tier.putMany([{ key, row: row(2, "mine") }]);
    expect(await waitFor(() => origin.writesLanded === 1)).toBe(true);
    // Another pod's newer write: its message cannot reach this pod, whose feed is not up.
    await origin.rows.putMany([{ key, row: row(3, "theirs") }]);
    // The feed's Redis is back; the pod subscribes for the first time (no gap: nothing to expire).
    await feedServer.restart();
    expect(await waitFor(() => feed.hearing)).toBe(true);
    origin.releaseWrites();
    expect(await write).toMatchObject({ written: 1, ignored: 0 });
    // Written while the feed was not heard: trusted no longer than a read made then (1 s), not for the TTL (60 s).
    clock.advance(1_500);
    expect(tier.getManyNow([key])).toBeUndefined();
    expect(await tier.getMany([key])).toEqual([row(3, "theirs")]);
  } finally {
    await close();
  }
}, 60_000);

test("a pod first heard after its first messages were lost is a gap: L1 copies of what it wrote are read again", async () => {
  const [feedServer, originServer] = await Promise.all([startRedis(), startRedis()]);
  const originNode = await RedisKvNode.connect({ host: "127.0.0.1", port: originServer.port });
  const origin = new TestOrigin(originNode);
  const feed = new RedisChangeFeed("pod-b", { where: { address: feedServer.address }, heartbeatMs: 200 });
  const clock = fakeClock();
  const l1 = new L1Cache({ maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: clock.now });
  const tier = new CacheTier(origin, { l1, feed, metrics: cacheMetrics(new MetricsRegistry()), clock: clock.now });
  const key = "first@1/k=i1";
  let late: RedisChangeFeed | undefined;
  try {
    expect(await feed.whenSubscribed(10_000)).toBe(true);
    const subscribedAt = performance.now();
    await origin.rows.putMany([{ key, row: row(1, "before") }]);
    expect(await tier.getMany([key])).toEqual([row(1, "before")]);
    // Every pod running when this one subscribed has been heard by now (each announces itself every second; the
    // window is the feed's deaf-after time, 3 s): a pod heard for the first time after it started since.
    expect(await waitFor(() => performance.now() - subscribedAt > 3_500)).toBe(true);
    const gaps = feed.state().gaps;
    // Pod A starts; its first write is acknowledged before its publishing connection is up: the message is dropped
    // (sequence 1).
    await origin.rows.putMany([{ key, row: row(2, "after") }]);
    late = new RedisChangeFeed("pod-a", { where: { address: feedServer.address }, heartbeatMs: 200 });
    late.publish([{ key, ts: 2, op: "put" }]);
    expect(late.state().dropped).toBe(1);
    // Its next write's message (sequence 2) arrives; so does its heartbeat (sequence 2).
    expect(await waitFor(() => late?.state().connected === true)).toBe(true);
    const received = feed.state().received;
    late.publish([{ key: "first@1/k=i2", ts: 1, op: "put" }]);
    expect(await waitFor(() => feed.state().received > received)).toBe(true);
    // Message 1 was never heard here: a gap, as a hole later in the sequence is. Before, this pod kept its copy of
    // the row pod A replaced for the L1 TTL (60 s).
    expect(feed.state().gaps).toBeGreaterThan(gaps);
    expect(tier.getManyNow([key])).toBeUndefined();
    expect(await tier.getMany([key])).toEqual([row(2, "after")]);
  } finally {
    await late?.close();
    await tier.close();
    await feed.close();
    await Promise.allSettled([feedServer.stop(), originServer.stop()]);
  }
}, 60_000);

test("a running pod heard within the first 3 s is no gap, also when this pod is too busy to read it until after (a start-up stall)", async () => {
  const feedServer = await startRedis();
  const feed = new RedisChangeFeed("pod-s", { where: { address: feedServer.address }, heartbeatMs: 200 });
  try {
    expect(await feed.whenSubscribed(10_000)).toBe(true);
    // Pod E has run since before this pod subscribed (5 messages sent then, which this pod need not hear): its
    // heartbeat announcing 5, then its 6th message, both reach this pod's socket at once (published by another
    // process, synchronously: this pod's event loop has not turned since it subscribed).
    const publish = (message: object): void => {
      const out = Bun.spawnSync(["redis-cli", "-h", feedServer.host, "-p", String(feedServer.port), "PUBLISH", "quiver:feed", JSON.stringify(message)]);
      expect(out.stdout.toString().trim()).toBe("1");
    };
    publish({ o: "pod-e#00000001", s: 5, t: Date.now(), h: 1 });
    publish({ o: "pod-e#00000001", s: 6, t: Date.now(), c: [["stall@1/k=i1", 1, 0]] });
    expect(feed.state().received).toBe(0);
    // Start-up work after the subscription holds the event loop past the window (a vector snapshot read with
    // readIndexSync, a full collection): the messages are read only then.
    Bun.sleepSync(3_200);
    expect(await waitFor(() => feed.state().received === 1)).toBe(true);
    // Nothing of pod E's was lost: both arrived within 3 s of the subscription.
    expect(feed.state().gaps).toBe(0);
  } finally {
    await feed.close();
    await feedServer.stop();
  }
}, 60_000);

test("two running processes under one pod name (a start-first replacement keeping its hostname) are no gap as they take turns", async () => {
  const feedServer = await startRedis();
  const feed = new RedisChangeFeed("pod-s", { where: { address: feedServer.address }, heartbeatMs: 200 });
  // Heartbeats only when asked (an hour apart): the messages below come in the order they are sent.
  const older = new RedisChangeFeed("pod-x", { where: { address: feedServer.address }, heartbeatMs: 3_600_000 });
  let newer: RedisChangeFeed | undefined;
  try {
    expect(await feed.whenSubscribed(10_000)).toBe(true);
    const subscribedAt = performance.now();
    expect(await waitFor(() => older.state().connected)).toBe(true);
    let received = 0;
    const send = async (from: RedisChangeFeed, key: string): Promise<void> => {
      from.publish([{ key, ts: 1, op: "put" }]);
      received++;
      expect(await waitFor(() => feed.state().received === received)).toBe(true);
    };
    await send(older, "twin@1/k=i1");
    // Past the window in which running pods announce themselves: pods first heard after it started since.
    expect(await waitFor(() => performance.now() - subscribedAt > 3_500)).toBe(true);
    // The replacement starts under the same name (same hostname, PID 1) while the old process still drains.
    newer = new RedisChangeFeed("pod-x", { where: { address: feedServer.address }, heartbeatMs: 3_600_000 });
    expect(await waitFor(() => newer?.state().connected === true)).toBe(true);
    await send(newer, "twin@1/k=i2");
    await send(older, "twin@1/k=i3");
    await send(newer, "twin@1/k=i4");
    await send(older, "twin@1/k=i5");
    // Every message of both was heard, in sequence: nothing to expire.
    expect(feed.state().gaps).toBe(0);
  } finally {
    await newer?.close();
    await older.close();
    await feed.close();
    await feedServer.stop();
  }
}, 60_000);
