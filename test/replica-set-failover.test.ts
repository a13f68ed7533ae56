import { afterAll, beforeAll, expect, test } from "bun:test";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { guardShard, IGNORE_OBSERVER, type ResilientShard } from "../src/resilience/shards.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { SentinelDiscovery } from "../src/shard/sentinel-discovery.ts";
import { type ReplicationGroup, startReplicationGroup } from "./support/redis-process.ts";

/**
 * kill -9 of a shard primary under load, with Sentinel promoting a replica.
 * Counts, rather than samples, what the issue promises: no read fails once
 * the dead primary is detected, and no acknowledged write is lost.
 */

const DETECTION_WINDOW_MS = 1000; // a read in flight at the kill may need one attempt timeout to move on
const KEYS = 200;

let group: ReplicationGroup;
let set: ReplicaSet;
/** What the ring uses: the replica set behind its policies (retries across members and the failover window). */
let shard: ResilientShard;

beforeAll(async () => {
  group = await startReplicationGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 });
  set = await ReplicaSet.connect({
    id: "failover",
    discovery: new SentinelDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName }),
    writeAcks: 1,
    attemptTimeoutMs: 200,
    probeIntervalMs: 200,
    failoverWindowMs: 5000,
    readAttemptTimeoutMs: 200,
    requestTimeoutMs: 1000,
  });
  shard = guardShard(set, set.tuning, IGNORE_OBSERVER);
});

afterAll(async () => {
  await set?.close();
  await group?.stop();
});

test("kill -9 of the primary: reads keep succeeding, writes resume after promotion, no acknowledged write is lost", async () => {
  const oldPrimary = group.primary.address;
  const acked = new Map<string, number>(); // key -> newest acknowledged event time
  const counts = { writesOk: 0, writesFailed: 0, writesOkAfterPromotion: 0, readsOk: 0, readsFailed: 0, readsFailedBeyondWindow: 0 };
  let killedAt = Number.POSITIVE_INFINITY;
  let promotedAt = Number.POSITIVE_INFINITY;
  let stopAt = Date.now() + 20_000; // hard bound; normally ends 2 s after promotion
  let seq = 0;
  const failedReadsAtMs: number[] = [];

  const writer = async (): Promise<void> => {
    for (let i = 0; i < 1_000_000 && Date.now() < stopAt; i++) {
      const ts = ++seq;
      const key = `fo@1/k=i${ts % KEYS}`;
      try {
        await shard.putMany([{ key, row: { ts, values: [ts] } }]);
        acked.set(key, Math.max(acked.get(key) ?? 0, ts));
        counts.writesOk++;
        if (Date.now() > promotedAt) counts.writesOkAfterPromotion++;
      } catch {
        counts.writesFailed++;
      }
      await Bun.sleep(2);
    }
  };
  const reader = async (): Promise<void> => {
    for (let i = 0; i < 1_000_000 && Date.now() < stopAt; i++) {
      const keys = Array.from({ length: 10 }, (_, j) => `fo@1/k=i${(i * 10 + j) % KEYS}`);
      const got = await shard.getMany(keys).catch(() => [UNAVAILABLE]);
      if (got.includes(UNAVAILABLE)) {
        counts.readsFailed++;
        failedReadsAtMs.push(Date.now() - killedAt);
        if (Date.now() > killedAt + DETECTION_WINDOW_MS) counts.readsFailedBeyondWindow++;
      } else counts.readsOk++;
      await Bun.sleep(2);
    }
  };
  const chaos = async (): Promise<void> => {
    await Bun.sleep(1000);
    killedAt = Date.now();
    await group.primary.kill9();
    for (let i = 0; i < 400 && Date.now() < stopAt; i++) {
      const primary = set.stats().primary;
      if (primary && primary !== oldPrimary) {
        promotedAt = Date.now();
        stopAt = Math.min(stopAt, promotedAt + 2000);
        return;
      }
      await Bun.sleep(50);
    }
  };
  await Promise.all([writer(), reader(), chaos()]);

  // Let the surviving replica catch up with the new primary, then check every acknowledged write.
  for (let i = 0; i < 60 && !set.stats().members.every((m) => m.lagBytes === 0 || !m.healthy); i++) await Bun.sleep(50);
  const keys = [...acked.keys()];
  const rows = await shard.getMany(keys);
  let lost = 0;
  rows.forEach((row, i) => {
    if (row === undefined || row === UNAVAILABLE || row.ts < acked.get(keys[i]!)!) lost++;
  });

  const stats = set.stats();
  console.log(
    JSON.stringify({ ...counts, lostAcknowledgedWrites: lost, failoverMs: promotedAt - killedAt, newPrimary: stats.primary, writeRetries: stats.writeRetries, failedReadsAtMs }),
  );
  expect(promotedAt).toBeLessThan(Number.POSITIVE_INFINITY);
  expect(stats.primary).not.toBe(oldPrimary);
  expect(stats.primaryChanges).toBeGreaterThanOrEqual(1);
  if (counts.readsFailed > 0) console.log(JSON.stringify(stats.members));
  expect(counts.readsFailedBeyondWindow).toBe(0);
  expect(lost).toBe(0);
  expect(counts.writesOkAfterPromotion).toBeGreaterThan(0);
  expect(counts.readsOk).toBeGreaterThan(0);
}, 45_000);

test("SENTINEL FAILOVER with the old primary alive: no push answered 200 is lost (writeAcks 1, two replicas)", async () => {
  // The old primary takes writes for ~1 s after Sentinel told the replica it picked to stop following it, and the
  // replica it did not pick confirms them: 57 of 723 pushes answered 200 were then discarded (audit).
  const manual = await startReplicationGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 });
  const discovery = new SentinelDiscovery({ sentinels: manual.sentinels.map((s) => s.address), masterName: manual.masterName });
  const mset = await ReplicaSet.connect({ id: "manual-failover", discovery, writeAcks: 1, attemptTimeoutMs: 200, probeIntervalMs: 200, failoverWindowMs: 8000, readAttemptTimeoutMs: 200, requestTimeoutMs: 1000 });
  const mshard = guardShard(mset, mset.tuning, IGNORE_OBSERVER);
  const { Redis } = await import("ioredis");
  const sentinel = new Redis({ host: manual.sentinels[0]!.host, port: manual.sentinels[0]!.port, maxRetriesPerRequest: 1 });
  try {
    const oldPrimary = mset.stats().primary;
    const acked: string[] = [];
    let failed = 0;
    let stopAt = Date.now() + 20_000;
    let seq = 0;
    const writer = async (): Promise<void> => {
      for (let i = 0; i < 1_000_000 && Date.now() < stopAt; i++) {
        const key = `mf@1/k=i${++seq}`;
        try {
          await mshard.putMany([{ key, row: { ts: seq, values: [seq] } }]);
          acked.push(key);
        } catch {
          failed++;
        }
        await Bun.sleep(3);
      }
    };
    const chaos = async (): Promise<void> => {
      await Bun.sleep(1000);
      await sentinel.call("SENTINEL", "FAILOVER", manual.masterName);
      for (let i = 0; i < 300 && Date.now() < stopAt; i++) {
        const primary = mset.stats().primary;
        if (primary && primary !== oldPrimary) {
          stopAt = Math.min(stopAt, Date.now() + 3000);
          return;
        }
        await Bun.sleep(50);
      }
    };
    await Promise.all([writer(), chaos()]);
    expect(mset.stats().primary).not.toBe(oldPrimary);
    // Read every acknowledged key on the new primary once the old one has resynced from it (its writes discarded).
    await Bun.sleep(3000);
    const rows = await mset.getManyPrimary(acked);
    const lost = acked.filter((_, i) => rows[i] === undefined || rows[i] === UNAVAILABLE);
    console.log(JSON.stringify({ manualFailover: { acked: acked.length, failed, lost: lost.length, firstLost: lost.slice(0, 3) } }));
    expect(acked.length).toBeGreaterThan(100);
    expect(lost).toEqual([]);
  } finally {
    sentinel.disconnect();
    await mset.close();
    await manual.stop();
  }
}, 60_000);
