import { describe, expect, test } from "bun:test";
import { runKvContract } from "../../test/kv-contract.ts";
import { LocalChangeFeed } from "../feed/local-feed.ts";
import type { ReadContext, StoredRow } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { ShardBreakerOpenError, StoreWriteError } from "../kv/storage-errors.ts";
import { MetricsRegistry } from "../ops/metrics.ts";
import { MeteredKvNode } from "../ops/metered-node.ts";
import { cacheMetrics } from "./cache-metrics.ts";
import { CacheTier } from "./cache-tier.ts";
import { L1Cache } from "./l1-cache.ts";
import { TestOrigin } from "../../test/support/test-origin.ts";
import { decode } from "@msgpack/msgpack";
import { KeyBatch } from "../kv/key-batch.ts";

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });

/** A manual timer for the refresh gather: `fire()` runs what is scheduled, as if its time had come. */
function manualTimer() {
  let pending: (() => void) | undefined;
  return {
    schedule: (fn: () => void) => {
      pending = fn;
      return () => {
        pending = undefined;
      };
    },
    get armed() {
      return pending !== undefined;
    },
    fire: () => {
      const fn = pending;
      pending = undefined;
      fn?.();
    },
  };
}

function setup(refreshGatherMs?: number, schedule?: (fn: () => void, ms: number) => () => void) {
  let now = 1_700_000_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const origin = new TestOrigin(new MemoryKvNode("m"));
  const feed = new LocalChangeFeed("pod-a");
  const metrics = new MetricsRegistry();
  const m = cacheMetrics(metrics);
  const l1 = new L1Cache({ maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: clock.now });
  const tier = new CacheTier(origin, { l1, feed, metrics: m, clock: clock.now, ...(refreshGatherMs === undefined ? {} : { refreshGatherMs }), ...(schedule === undefined ? {} : { schedule }) });
  return { clock, origin, feed, tier, l1, m, metrics };
}

runKvContract("CacheTier (L1) over MemoryKvNode", async () => {
  const { tier } = setup();
  return { node: tier, dispose: () => tier.close() };
});

describe("CacheTier with L1", () => {
  test("read-your-writes: a read in flight when this pod's write lands does not put the old row back in L1", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "old") }]);
    origin.hold(true);
    const inFlight = tier.getMany(["v@1/k=i1"]);
    await Bun.sleep(0);
    expect(await tier.putMany([{ key: "v@1/k=i1", row: row(6, "new") }])).toMatchObject({ written: 1 });
    origin.release();
    // The read began before the write: it may answer the old row; what is cached after it may not.
    await inFlight;
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(6, "new")]);
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(6, "new")]);
  });

  test("read-your-writes with a late row in the push (the origin ignored some): a read in flight does not put the old row back", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([
      { key: "v@1/k=i1", row: row(5, "old") },
      { key: "v@1/k=i2", row: row(10, "kept") },
    ]);
    origin.hold(true);
    const inFlight = tier.getMany(["v@1/k=i1"]);
    await Bun.sleep(0);
    // i2's row is older than the stored one: ignored. The cached copies were deleted without a floor, and the read
    // in flight filled L1 with i1's pre-write row: the writing pod served it after its 200.
    expect(await tier.putMany([{ key: "v@1/k=i1", row: row(6, "new") }, { key: "v@1/k=i2", row: row(1, "late") }])).toMatchObject({ written: 1, ignored: 1 });
    origin.release();
    await inFlight;
    expect(await tier.getMany(["v@1/k=i1", "v@1/k=i2"])).toEqual([row(6, "new"), row(10, "kept")]);
  });

  test("a lookup made after this pod's write does not join a read that began before it", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "old") }]);
    origin.hold(true);
    const earlier = tier.getMany(["v@1/k=i1"]);
    await Bun.sleep(0);
    expect(await tier.putMany([{ key: "v@1/k=i1", row: row(6, "new") }])).toMatchObject({ written: 1 });
    // Issued after the 200: joining the earlier read answered the row from before the write.
    const later = tier.getMany(["v@1/k=i1"]);
    origin.release();
    expect(await earlier).toEqual([row(5, "old")]);
    expect(await later).toEqual([row(6, "new")]);
  });

  test("a write that fails (part of a multi-shard push may have landed) drops this pod's cached copies of its keys", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "old") }]);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(5, "old")]);
    // The write lands on the origin, then fails (as a shard's timeout after its primary applied it).
    const realPut = origin.rows.putMany.bind(origin.rows);
    const put = origin.putMany.bind(origin);
    origin.putMany = async (entries, signal) => {
      await realPut(entries, signal);
      throw new Error("shard-2: timed out");
    };
    await expect(tier.putMany([{ key: "v@1/k=i1", row: row(6, "new") }])).rejects.toThrow("timed out");
    origin.putMany = put;
    expect(tier.getManyNow(["v@1/k=i1"])).toBeUndefined();
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(6, "new")]);
  });

  test("a write refused before anything was sent keeps this pod's copies of its keys; of one refused in part, the refused share's only", async () => {
    const { origin, tier, clock } = setup();
    const a = "v@1/k=i1";
    const b = "v@1/k=i2";
    await origin.rows.putMany([
      { key: a, row: row(5, "a-old") },
      { key: b, row: row(5, "b-old") },
    ]);
    expect(await tier.getMany([a, b])).toEqual([row(5, "a-old"), row(5, "b-old")]);
    const put = origin.putMany.bind(origin);
    // A two-shard push: a's shard refuses it (write breaker open), b's share lands.
    origin.putMany = async (entries, signal) => {
      const landed = entries.filter((e) => e.key === b);
      await origin.rows.putMany(landed, signal);
      throw new StoreWriteError(new ShardBreakerOpenError("shard-a", "write", 5_000), landed);
    };
    const push = [
      { key: a, row: row(6, "a-new") },
      { key: b, row: row(6, "b-new") },
    ];
    await expect(tier.putMany(push)).rejects.toMatchObject({ code: "shard_breaker_open", retryAfterSeconds: 5 });
    expect(tier.getManyNow([a])).toEqual([row(5, "a-old")]);
    expect(tier.getManyNow([b])).toBeUndefined();
    expect(await tier.getMany([a, b])).toEqual([row(5, "a-old"), row(6, "b-new")]);
    // A one-shard push its breaker refused: nothing is dropped.
    origin.putMany = () => Promise.reject(new ShardBreakerOpenError("shard-a", "write", 5_000));
    await expect(tier.putMany([{ key: a, row: row(7, "a-7") }])).rejects.toBeInstanceOf(ShardBreakerOpenError);
    expect(tier.getManyNow([a, b])).toEqual([row(5, "a-old"), row(6, "b-new")]);
    // Past its TTL with the shard down, a's copy is still there to serve as a grace copy.
    origin.putMany = put;
    clock.advance(61_000);
    origin.getMany = async (keys) => keys.map(() => UNAVAILABLE);
    expect(await tier.getMany([a])).toEqual([{ ts: 5, values: ["a-old"], stale: true }]);
  });

  test("a lookup joining a read in flight waits no longer than its own budget", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "x") }]);
    origin.hold();
    const degraded: string[] = [];
    // The read in flight began with a long budget (a hung shard would hold it seconds): the joiner answers at its own.
    const roomy = tier.getMany(["v@1/k=i1"], { deadline: performance.now() + 60_000 });
    const tight = await tier.getMany(["v@1/k=i1"], { deadline: performance.now() + 20, degraded });
    expect(tight).toEqual([UNAVAILABLE]);
    expect(degraded).toEqual(["origin"]);
    expect(origin.reads).toBe(1);
    origin.release();
    expect(await roomy).toEqual([row(5, "x")]);
  });

  test("a lookup whose joined read gave up at a tighter budget reads the key itself within its own", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "x") }]);
    // The read in flight (begun by a 5 ms lookup) gives up at its deadline, as a slow shard's read does; the shard
    // answers again by the joiner's turn.
    const real = origin.getMany.bind(origin);
    let slow = true;
    origin.getMany = async (keys, ctx) => {
      if (!slow) return real(keys, ctx);
      await Bun.sleep(Math.max(0, (ctx?.deadline ?? 0) - performance.now()) + 1);
      return keys.map(() => UNAVAILABLE);
    };
    const now = performance.now();
    const tight = tier.getMany(["v@1/k=i1"], { deadline: now + 5 });
    const roomy = tier.getMany(["v@1/k=i1"], { deadline: now + 60_000 });
    slow = false;
    expect(await tight).toEqual([UNAVAILABLE]);
    expect(await roomy).toEqual([row(5, "x")]);
  });

  test("joiners of a read that failed before its deadline (a shard down) do not read again", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "x") }]);
    origin.down = true;
    const now = performance.now();
    const all = Array.from({ length: 10 }, (_, i) => tier.getMany(["v@1/k=i1"], { deadline: now + 50 + i }));
    expect(await Promise.all(all)).toEqual(Array.from({ length: 10 }, () => [UNAVAILABLE]));
    expect(origin.reads).toBe(1);
  });

  test("100 concurrent lookups of one cold key cause one origin read", async () => {
    const { origin, tier, m } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "x") }]);
    origin.hold();
    const reads = Array.from({ length: 100 }, () => tier.getMany(["v@1/k=i1"]));
    origin.release();
    const got = await Promise.all(reads);
    expect(origin.reads).toBe(1);
    expect(got.every((g) => (g[0] as StoredRow).ts === 5)).toBe(true);
    expect(m.coalesced.value).toBe(99);
  });

  test("a request whose keys all hit L1 is answered now, without the origin", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    expect(tier.readsNow).toBe("sometimes");
    expect(tier.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toBeUndefined();
    await tier.getMany(["v@1/k=i1", "v@1/k=i2"]);
    const before = origin.reads;
    expect(tier.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toEqual([row(5, 1), undefined]);
    expect(origin.reads).toBe(before);
  });

  test("a miss is cached for the negative TTL; then the origin is asked again", async () => {
    const { origin, tier, clock } = setup();
    await tier.getMany(["v@1/k=i9"]);
    await tier.getMany(["v@1/k=i9"]);
    expect(origin.reads).toBe(1);
    clock.advance(5_001);
    await tier.getMany(["v@1/k=i9"]);
    expect(origin.reads).toBe(2);
  });

  test("UNAVAILABLE is never cached", async () => {
    const { origin, tier } = setup();
    origin.down = true;
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([UNAVAILABLE]);
    origin.down = false;
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(5, 1)]);
  });

  test("grace: with the origin down, an expired row is served marked stale; an uncached key stays UNAVAILABLE", async () => {
    const { origin, tier, clock, m } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    clock.advance(61_000);
    origin.down = true;
    const ctx: ReadContext = { degraded: [] };
    const got = await tier.getMany(["v@1/k=i1", "v@1/k=i2"], ctx);
    expect(got).toEqual([{ ts: 5, values: [1], stale: true }, UNAVAILABLE]);
    expect(ctx.degraded).toEqual(["shard-1"]);
    expect(m.staleServed.value).toBe(1);
    // Grace copies alone still name the shard that could not answer (they named none).
    const onlyGrace: ReadContext = { degraded: [] };
    expect(await tier.getMany(["v@1/k=i1"], onlyGrace)).toEqual([{ ts: 5, values: [1], stale: true }]);
    expect(onlyGrace.degraded).toEqual(["shard-1"]);
    // Past the grace window the copy is gone.
    clock.advance(3_600_000);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([UNAVAILABLE]);
  });

  test("with the origin up, an expired row is re-read, not served stale", async () => {
    const { origin, tier, clock } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(6, 2) }]);
    clock.advance(61_000);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(6, 2)]);
  });

  test("read-your-writes: a write through this pod replaces the held row at once", async () => {
    const { origin, tier } = setup();
    await tier.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    await tier.putMany([{ key: "v@1/k=i1", row: row(6, 2) }]);
    const reads = origin.reads;
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(6, 2)]);
    expect(origin.reads).toBe(reads);
    // A write the origin ignores (it holds a newer row) is never shown; the copy held stays when it is at least as new.
    await tier.putMany([{ key: "v@1/k=i1", row: row(4, 0) }]);
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(6, 2)]);
    // Another pod wrote 8, unheard here; this pod's write at 7 is ignored: the copy at 6 gives way to a floor at 7.
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(8, 3) }]);
    expect(await tier.putMany([{ key: "v@1/k=i1", row: row(7, 9) }])).toMatchObject({ ignored: 1 });
    expect(tier.getManyNow(["v@1/k=i1"])).toBeUndefined();
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(8, 3)]);
  });

  test("another pod's acknowledged write drops the older L1 copy; a read in flight cannot put it back", async () => {
    const { origin, tier, feed } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(6, 2) }]);
    feed.deliver([{ key: "v@1/k=i1", ts: 6, op: "put" }], "pod-b");
    expect(tier.getManyNow(["v@1/k=i1"])).toBeUndefined();
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(6, 2)]);

    // A read is in flight (held at the origin) when another pod's newer write is announced:
    // the older row it brings back is answered to its caller but must not land in L1.
    await origin.rows.putMany([{ key: "v@1/k=i2", row: row(5, "old") }]);
    origin.hold();
    const inFlight = tier.getMany(["v@1/k=i2"]);
    feed.deliver([{ key: "v@1/k=i2", ts: 9, op: "put" }], "pod-b");
    origin.release();
    expect(await inFlight).toEqual([row(5, "old")]);
    expect(tier.getManyNow(["v@1/k=i2"])).toBeUndefined();
  });

  test("this pod's own events do not drop its entries", async () => {
    const { origin, tier, feed } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    feed.publish([{ key: "v@1/k=i1", ts: 9, op: "put" }]);
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(5, 1)]);
  });

  test("a view invalidation drops only that view; a gap expires L1", async () => {
    const { origin, tier, feed, m } = setup();
    await origin.rows.putMany([
      { key: "a@1/k=i1", row: row(5, 1) },
      { key: "b@1/k=i1", row: row(5, 1) },
    ]);
    await tier.getMany(["a@1/k=i1", "b@1/k=i1"]);
    await tier.invalidate({ view: "a" });
    expect(tier.getManyNow(["a@1/k=i1"])).toBeUndefined();
    expect(tier.getManyNow(["b@1/k=i1"])).toEqual([row(5, 1)]);
    expect([m.invalidationsSent.value, m.invalidationsApplied.value]).toEqual([1, 1]);
    feed.deliverGap("test");
    expect(tier.getManyNow(["b@1/k=i1"])).toBeUndefined();
    expect(m.gapsCleared.value).toBe(1);
  });

  test("after a gap every row is read again, and a shard that cannot answer gets its grace copies, not defaults", async () => {
    const { origin, tier, feed, m } = setup();
    await origin.rows.putMany([
      { key: "v@1/k=i1", row: row(5, 1) },
      { key: "v@1/k=i2", row: row(5, 2) },
    ]);
    await tier.getMany(["v@1/k=i1", "v@1/k=i2"]);
    // Another pod's write this pod never heard of (the gap's reason): the next read must fetch it.
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(6, 10) }]);
    feed.deliverGap("test");
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(6, 10)]);
    // The origin down (the feed's shard, say): the row not re-read is served from its copy, marked stale.
    origin.down = true;
    expect(await tier.getMany(["v@1/k=i2"])).toEqual([{ ts: 5, values: [2], stale: true }]);
    expect(m.staleServed.value).toBe(1);
  });

  test("after a gap, a row the origin lost meanwhile is not kept as a grace copy once the origin says it is gone", async () => {
    const { origin, tier, feed, m, clock } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1"]);
    // It leaves the origin while this pod hears no feed (the feed shard restarted without it): the gap's unknown.
    await origin.rows.deleteMany(["v@1/k=i1"]);
    feed.deliverGap("test");
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([undefined]);
    // Known gone: cached as such, and with the origin down later the deleted row must not come back as a stale copy
    // (kept, it was served {stale: true} for the rest of its grace hour, and every read went to the origin).
    origin.down = true;
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([undefined]);
    clock.advance(10_000);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([UNAVAILABLE]);
    expect(m.staleServed.value).toBe(0);
  });

  test("after a gap, an older row the origin now holds (restored from a backup) is cached, not refused by the expired copy", async () => {
    const { origin, tier, feed } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(10, "new") }]);
    await tier.getMany(["v@1/k=i1"]);
    // The shard is restored from an older backup (the feed's shard: its outage is the gap).
    await origin.rows.deleteMany(["v@1/k=i1"]);
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "old") }]);
    feed.deliverGap("test");
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(5, "old")]);
    // Refused (older than the copy the gap expired), the key was read from the origin on every lookup for as long as
    // the copy stayed, and served as that copy, {stale: true}, whenever the origin could not answer.
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(5, "old")]);
  });

  test("a floor from another pod's write that never landed stops refusing the stored row once its grace window is over", async () => {
    const { origin, tier, feed, clock } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, "stored") }]);
    await tier.getMany(["v@1/k=i1"]);
    // Another pod's push at ts 10 failed (published all the same: another shard's share may have landed); this key's
    // did not, and nobody retried it.
    feed.deliver([{ key: "v@1/k=i1", ts: 10, op: "put" }], "pod-b");
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(5, "stored")]);
    // Within the floor's window the stored row is older than what pod B wrote: read from the origin, not cached.
    expect(tier.getManyNow(["v@1/k=i1"])).toBeUndefined();
    // Past it (TTL + grace: no read lags that long), the stored row is cached again. Kept, the floor refused it until
    // L1 evicted the floor: every lookup of the key an origin read, for as long as L1 had room.
    clock.advance(60_000 + 3_600_000);
    expect(await tier.getMany(["v@1/k=i1"])).toEqual([row(5, "stored")]);
    expect(tier.getManyNow(["v@1/k=i1"])).toEqual([row(5, "stored")]);
  });

  test("a read started before an invalidation does not fill L1 after it", async () => {
    const { origin, tier } = setup();
    await origin.rows.putMany([{ key: "a@1/k=i1", row: row(5, 1) }]);
    origin.hold();
    const read = tier.getMany(["a@1/k=i1"]);
    await tier.invalidate({ view: "a" });
    origin.release();
    expect(await read).toEqual([row(5, 1)]);
    expect(tier.getManyNow(["a@1/k=i1"])).toBeUndefined();
  });

  test("raw reads hand L1's rows over as their stored bytes, only when every key is fresh there", async () => {
    const { origin, tier, clock, m } = setup();
    const keys = ["v@1/k=i1", "v@1/k=i2", "v@1/k=i3"];
    const raw = tier.rawNow!;
    const batch = KeyBatch.of(keys);
    const read = () => {
      const seen: { index: number; ts: number; values: unknown }[] = [];
      const found = raw.readRaw(batch, batch.all, 0, batch.count, {
        row: (index, bytes, view, start, end, ts) => {
          // The DataView covers the same bytes (the answer writers read numbers through it).
          expect(view.byteLength).toBe(bytes.byteLength);
          seen.push({ index, ts, values: decode(bytes.subarray(start, end)) });
        },
      });
      return { found, seen };
    };
    await origin.rows.putMany([{ key: keys[0]!, row: row(5, 1.5, "x", [1, 2]) }, { key: keys[2]!, row: row(7, true) }]);
    expect(read().found).toBe(-1); // nothing in L1 yet
    await tier.getMany(keys); // fills L1: two rows and a negative entry
    const hits = m.l1Hits.value;
    const reads = origin.reads;
    expect(read()).toEqual({ found: 2, seen: [{ index: 0, ts: 5, values: [1.5, "x", [1, 2]] }, { index: 2, ts: 7, values: [true] }] });
    expect(m.l1Hits.value).toBe(hits + 3);
    expect(origin.reads).toBe(reads);
    // The negative entry expires first (5 s): one key not fresh makes the whole read -1, and nothing is counted.
    clock.advance(5_000);
    expect(read().found).toBe(-1);
    expect(m.l1Hits.value).toBe(hits + 3);
    await tier.getMany(keys);
    expect(read().found).toBe(2);
    // A newer write elsewhere supersedes a row: its floor is not fresh either.
    tier.onChanges([{ key: keys[2]!, ts: 9, op: "put" }], "another-pod");
    expect(read().found).toBe(-1);
    // Until the origin's copy reaches the floor, a read does not bring it back; then it does.
    await tier.getMany(keys);
    expect(read().found).toBe(-1);
    await origin.rows.putMany([{ key: keys[2]!, row: row(9, false) }]);
    await tier.getMany(keys);
    expect(read().seen[1]).toEqual({ index: 2, ts: 9, values: [false] });
    // Past the TTL, rows are grace copies, never raw answers.
    clock.advance(60_000);
    expect(read().found).toBe(-1);
  });

  test("a read-through raw read: L1's rows and the rows read for the rest, as bytes; the misses read once, joining reads in flight", async () => {
    const { origin, tier, m } = setup();
    const keys = ["v@1/k=i1", "v@1/k=i2", "v@1/k=i3", "v@1/k=i4"];
    await origin.rows.putMany([{ key: keys[0]!, row: row(5, 1.5, "x") }, { key: keys[1]!, row: row(6, [1, 2]) }, { key: keys[3]!, row: row(8, null) }]);
    await tier.getMany([keys[0]!, keys[2]!]); // L1: a row and a negative entry
    const hits = m.l1Hits.value;
    const misses = m.l1Misses.value;
    const batch = KeyBatch.of(keys);
    origin.hold();
    const reads = origin.reads;
    const held = tier.rawNow!.readThrough!(batch);
    expect(held.missing).toBe(2);
    const pending = held.readRest({ degraded: [] });
    // The batch was read before the call returned: it may be reused at once.
    batch.reset();
    batch.begin(new TextEncoder().encode("v@1/"));
    batch.ascii("k=i9");
    batch.finish();
    // A plain read of a key in flight joins that read.
    const joined = tier.getMany([keys[3]!]);
    origin.release();
    await pending;
    expect(origin.reads).toBe(reads + 1);
    expect(origin.keysRead).toBeGreaterThanOrEqual(2);
    expect(m.coalesced.value).toBe(1);
    expect((await joined)[0]).toEqual(row(8, null));
    const seen: { index: number; ts: number; values: unknown }[] = [];
    const found = held.report({ row: (index, bytes, _view, start, end, ts) => seen.push({ index, ts, values: decode(bytes.subarray(start, end)) }) });
    expect(found).toBe(3);
    expect(seen.sort((a, b) => a.index - b.index)).toEqual([
      { index: 0, ts: 5, values: [1.5, "x"] },
      { index: 1, ts: 6, values: [[1, 2]] },
      { index: 3, ts: 8, values: [null] },
    ]);
    // The same read as slots, as getMany answers it.
    expect(held.slots()).toEqual([row(5, 1.5, "x"), row(6, [1, 2]), undefined, row(8, null)]);
    // Hits and misses counted once, as a getMany of the batch counts them.
    expect(m.l1Hits.value - hits).toBe(2 + 0);
    expect(m.l1Misses.value - misses).toBe(2 + 1);
    // The rows read through are in L1 now: the raw reads answer at once.
    const again = KeyBatch.of(keys);
    expect(tier.rawNow!.readRaw(again, again.all, 0, again.count, { row: () => {} })).toBe(3);
    const now = tier.rawNow!.readThrough!(again);
    expect([now.missing, now.report({ row: () => {} })]).toEqual([0, 3]);
  });

  test("behind the metrics wrapper, a read-through raw read is one read whose keys are counted once, however the caller takes them", async () => {
    const { origin, tier } = setup();
    const metrics = new MetricsRegistry({ defaultMetrics: false });
    const node = new MeteredKvNode(tier, metrics);
    const keys = ["v@1/k=i1", "v@1/k=i2", "v@1/k=i3"];
    await origin.rows.putMany([{ key: keys[0]!, row: row(5, 1) }, { key: keys[1]!, row: row(6, 2) }]);
    await tier.getMany([keys[0]!]);
    const held = node.rawNow!.readThrough!(KeyBatch.of(keys));
    await held.readRest({ degraded: [] });
    expect(held.report({ row: () => {} })).toBe(2);
    expect(held.slots()).toEqual([row(5, 1), row(6, 2), undefined]);
    let text = await metrics.render();
    expect(text).toContain(`quiver_store_operations_total{op="get",outcome="ok"} 1`);
    expect(text).toContain(`quiver_store_keys_total{op="get",result="found"} 2`);
    expect(text).toContain(`quiver_store_keys_total{op="get",result="missing"} 1`);
    // Every key in L1 now (a row each, and a negative entry): a pass answered at once is metered at once.
    const now = node.rawNow!.readThrough!(KeyBatch.of(keys));
    expect(now.missing).toBe(0);
    text = await metrics.render();
    expect(text).toContain(`quiver_store_operations_total{op="get",outcome="ok"} 2`);
    expect(text).toContain(`quiver_store_keys_total{op="get",result="found"} 4`);
    expect(text).toContain(`quiver_store_keys_total{op="get",result="missing"} 2`);
  });

  test("a read-through raw read of keys whose shard cannot answer reports nothing: its slots carry UNAVAILABLE, grace copies and the degraded shard", async () => {
    const { origin, tier, clock } = setup();
    const keys = ["v@1/k=i1", "v@1/k=i2", "v@1/k=i3"];
    await origin.rows.putMany([{ key: keys[0]!, row: row(5, 1) }, { key: keys[1]!, row: row(6, 2) }]);
    await tier.getMany([keys[1]!]);
    clock.advance(61_000); // keys[1] is a grace copy now
    await tier.getMany([keys[0]!]); // keys[0] fresh
    origin.down = true;
    const degraded: string[] = [];
    const held = tier.rawNow!.readThrough!(KeyBatch.of(keys));
    await held.readRest({ degraded });
    let reported = 0;
    expect(held.report({ row: () => reported++ })).toBe(-1);
    expect(reported).toBe(0);
    expect(held.slots()).toEqual([row(5, 1), { ...row(6, 2), stale: true }, UNAVAILABLE]);
    expect(degraded).toEqual(["shard-1"]);
  });

  test("a hit in the last quarter of an entry's time to live reads the key again in the background, once; a key read that often never expires", async () => {
    const { origin, tier, clock, l1, m } = setup();
    const key = "v@1/k=i1";
    await origin.rows.putMany([{ key, row: row(5, "a") }]);
    await tier.getMany([key]);
    const until = l1.peek(key)!.freshUntil; // 30-60 s from now: the TTL less a first fill's jitter
    const settle = async () => {
      for (let i = 0; i < 100 && tier.state().inFlight > 0; i++) await Bun.sleep(0);
    };
    const reads = origin.reads;
    // Before the last quarter (15 s) of the TTL: hits only.
    clock.advance(until - clock.now() - 15_500);
    expect(tier.getManyNow([key])).toEqual([row(5, "a")]);
    await settle();
    expect(origin.reads).toBe(reads);
    // Inside it: the first hit, and only the first, starts a read; it answers from L1 meanwhile.
    await origin.rows.putMany([{ key, row: row(9, "b") }]);
    clock.advance(15_000);
    expect(tier.getManyNow([key])).toEqual([row(5, "a")]);
    expect(tier.getManyNow([key])).toEqual([row(5, "a")]);
    await settle();
    expect(origin.reads).toBe(reads + 1);
    expect(m.refreshed.value).toBe(1);
    // The refreshed row is fresh for a new TTL, past the old entry's expiry, with the origin's newer value.
    clock.advance(5_000);
    expect(clock.now()).toBeGreaterThan(until);
    expect(tier.getManyNow([key])).toEqual([row(9, "b")]);
    // Raw reads refresh the same way; so do misses cached as absent (the negative TTL's last quarter).
    await tier.getMany(["v@1/k=i2"]);
    const readsBefore = origin.reads;
    const negUntil = l1.peek("v@1/k=i2")!.freshUntil;
    clock.advance(negUntil - clock.now() - 100);
    const batch = KeyBatch.of(["v@1/k=i2"]);
    expect(tier.rawNow!.readRaw(batch, batch.all, 0, 1, { row: () => {} })).toBe(0);
    await settle();
    expect(origin.reads).toBe(readsBefore + 1);
    expect(m.refreshed.value).toBe(2);
  });

  /**
   * `n` keys read into L1 and filled once more while fresh (as a refresh
   * fills: the narrow jitter, all due within 54-60 s; first fills spread over
   * 30-60 s), then the clock past the latest one's refresh point and before
   * the earliest expiry: every hit claims its key.
   */
  async function dueForRefresh(n: number, refreshGatherMs?: number, schedule?: (fn: () => void, ms: number) => () => void) {
    const s = setup(refreshGatherMs, schedule);
    const keys = Array.from({ length: n }, (_, i) => `v@1/k=i${i}`);
    await s.origin.rows.putMany(keys.map((key, i) => ({ key, row: row(i + 1, i) })));
    await s.tier.getMany(keys);
    for (const [i, key] of keys.entries()) s.l1.fill(key, row(i + 1, i));
    const untils = keys.map((k) => s.l1.peek(k)!.freshUntil);
    s.clock.advance(Math.min(...untils) - s.clock.now() - 1);
    return { ...s, keys, untils };
  }

  test("the keys a turn's hits claim for a refresh are read together, in one flight", async () => {
    const { origin, tier, keys, m } = await dueForRefresh(40);
    const reads = origin.reads;
    for (const key of keys) expect(tier.getManyNow([key])).toEqual([row(keys.indexOf(key) + 1, keys.indexOf(key))]);
    expect(tier.state().inFlight).toBe(40);
    for (let i = 0; i < 100 && tier.state().inFlight > 0; i++) await Bun.sleep(0);
    expect(origin.reads).toBe(reads + 1);
    expect(m.refreshed.value).toBe(40);
  });

  test("with a gather time, the keys claimed over many turns leave in one flight once it has passed; close() cancels a gather", async () => {
    const timer = manualTimer();
    const { origin, tier, keys, m } = await dueForRefresh(40, 50, timer.schedule);
    const reads = origin.reads;
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    for (const key of keys) {
      tier.getManyNow([key]);
      await turn();
    }
    expect(origin.reads).toBe(reads); // forty turns, the gather not over: no flight yet
    expect(tier.state().inFlight).toBe(40);
    timer.fire();
    for (let i = 0; i < 100 && tier.state().inFlight > 0; i++) await Bun.sleep(0);
    expect(origin.reads).toBe(reads + 1);
    expect(m.refreshed.value).toBe(40);
    // Claimed and closed before the gather ends: the timer is cancelled and nothing is read.
    const lateTimer = manualTimer();
    const late = await dueForRefresh(5, 50, lateTimer.schedule);
    const lateReads = late.origin.reads;
    for (const key of late.keys) late.tier.getManyNow([key]);
    expect(lateTimer.armed).toBe(true);
    await late.tier.close();
    expect(lateTimer.armed).toBe(false);
    expect(late.origin.reads).toBe(lateReads);
  });

  test("the default gather timer is a real one: claims leave once it has run", async () => {
    const { origin, tier, keys, m } = await dueForRefresh(3, 5);
    const reads = origin.reads;
    for (const key of keys) tier.getManyNow([key]);
    const deadline = Date.now() + 5000;
    while ((origin.reads === reads || tier.state().inFlight > 0) && Date.now() < deadline) await Bun.sleep(5);
    expect(origin.reads).toBe(reads + 1);
    expect(m.refreshed.value).toBe(3);
    await tier.close();
  });

  test("one refresh flight at a time: keys claimed while one is out leave together when it lands; a key read again meanwhile is not refreshed", async () => {
    const { origin, tier, l1, m, keys, untils } = await dueForRefresh(30);
    const reads = origin.reads;
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    origin.hold();
    // Turn 1: ten hits claim their keys; the turn's end sends one flight, held at the origin.
    for (const key of keys.slice(0, 10)) tier.getManyNow([key]);
    await turn();
    expect(origin.reads).toBe(reads + 1);
    // Three more turns of claims while it is out: no new flight.
    for (let t = 1; t < 4; t++) {
      for (const key of keys.slice(t * 5 + 5, t * 5 + 10)) tier.getManyNow([key]);
      await turn();
    }
    expect(origin.reads).toBe(reads + 1);
    expect(tier.state().inFlight).toBe(25);
    // One of the waiting keys expires and a lookup reads it itself (refilled, no longer claimed).
    l1.delete(keys[12]!);
    const own = tier.getMany([keys[12]!]);
    expect(origin.reads).toBe(reads + 2);
    origin.release();
    expect(await own).toEqual([row(13, 12)]);
    for (let i = 0; i < 100 && tier.state().inFlight > 0; i++) await Bun.sleep(0);
    // The first flight landed, then the 14 keys still claimed went in one more.
    expect(origin.reads).toBe(reads + 3);
    expect(m.refreshed.value).toBe(24);
    for (const key of keys.slice(0, 25)) expect(l1.peek(key)!.freshUntil).toBeGreaterThan(Math.max(...untils));
  });

  test("metrics count hits, misses, fills and origin reads", async () => {
    const { origin, tier, metrics } = setup();
    await origin.rows.putMany([{ key: "v@1/k=i1", row: row(5, 1) }]);
    await tier.getMany(["v@1/k=i1", "v@1/k=i2"]);
    tier.getManyNow(["v@1/k=i1"]);
    const text = await metrics.render();
    expect(text).toContain('quiver_cache_hits_total{tier="l1"} 1');
    expect(text).toContain('quiver_cache_misses_total{tier="l1"} 2');
    expect(text).toContain('quiver_cache_fills_total{tier="l1"} 2');
    expect(text).toContain('quiver_cache_origin_reads_total{unit="batches"} 1');
  });
});
