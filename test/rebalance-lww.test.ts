import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CacheTier, cacheMetrics, L1Cache } from "../src/cache/index.ts";
import { L2Store } from "../src/cache/l2-store.ts";
import { LocalChangeFeed } from "../src/feed/local-feed.ts";
import { PublishingKvNode } from "../src/feed/publishing-node.ts";
import { ForwardingKvNode } from "../src/kv/forwarding-node.ts";
import { ringKeyStart } from "../src/kv/keys.ts";
import type { KvEntry, KvNode, PutOutcome, StoredRow } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { guardShard, IGNORE_OBSERVER } from "../src/resilience/shards.ts";
import { HashRing } from "../src/ring/ring.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { Migration, type MigrationMember } from "../src/shard/rebalance.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { DelegatingShard } from "./support/delegating-shard.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Last write wins across a migration, on real Redis, with a pod's L1 and L2 in
 * front of the store as the server wires them (Publishing → CacheTier →
 * ShardedStore). An audit pushed events older than the stored rows for keys
 * not yet moved: each was answered written and read back, because the write
 * went to the key's new owner alone, whose LWW script compared it with an
 * empty slot; the migration's copy later put the newer row back at the
 * destination without a word to the caches, which kept answering the older
 * one. Deterministic: the migration is held at its first scan (nothing moved
 * yet) and then at its first copy (rows read from the source, not yet written
 * to the destination) while the pushes are made.
 */

const ENTITIES = 2000;
const T0 = 1_700_000_000_000;
const key = (n: number): string => `feat@1/id=m${n}`;
const seed = (n: number): StoredRow => ({ ts: T0, values: [n, "seed"] });

/** A latch: `wait()` until `open()`. */
function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/**
 * A shard the test can hold: its next scan, or its next put once armed, waits
 * for the test (and says it arrived). Every put that replaces a row the shard
 * held is recorded: a row a cache may hold, changed under it.
 */
class HeldShard extends DelegatingShard {
  holdScan: { arrived: () => void; release: Promise<void> } | undefined;
  holdPut: { arrived: (entries: readonly KvEntry[]) => void; release: Promise<void> } | undefined;
  readonly replaced: Array<{ key: string; from: number; to: number }> = [];
  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const hold = this.holdPut;
    this.holdPut = undefined;
    if (hold) {
      hold.arrived(entries);
      await hold.release;
    }
    const before = await this.inner.getManyPrimary(entries.map((e) => e.key));
    const out = await this.inner.putMany(entries, signal);
    entries.forEach((e, i) => {
      const was = before[i];
      if (was !== undefined && was !== UNAVAILABLE && was.ts < e.row.ts) this.replaced.push({ key: e.key, from: was.ts, to: e.row.ts });
    });
    return out;
  }
  /** The migration's pages (with the process that answered them). */
  override async scanPrimary(cursor: string, count: number) {
    const hold = this.holdScan;
    this.holdScan = undefined;
    if (hold) {
      hold.arrived();
      await hold.release;
    }
    return this.inner.scanPrimary(cursor, count);
  }
}

let servers: RedisProcess[] = [];
let a: HeldShard;
let b: HeldShard;

async function shard(id: string, server: RedisProcess): Promise<HeldShard> {
  const bounds = { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 };
  const set = await ReplicaSet.connect({ id, discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, ...bounds });
  return new HeldShard(guardShard(set, bounds, IGNORE_OBSERVER));
}

/** The store as a pod's tier sees it: closing the pod leaves the shards to the test. */
class Unowned extends ForwardingKvNode {
  override close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One pod's cache tiers over `store` (L1 on, as with `--topology`; L2 on the given server). */
async function pod(store: KvNode, l2Address: string) {
  const feed = new LocalChangeFeed("pod");
  const l1 = new L1Cache({ maxBytes: 1 << 24, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: Date.now });
  // Bounds generous enough for a loaded test machine.
  const l2 = new L2Store({ where: { address: l2Address }, ttlMs: 300_000, negativeTtlMs: 5_000, timeoutMs: 1000 });
  expect(await l2.whenReady(10_000)).toBe(true);
  const tier = new CacheTier(new Unowned(store), { l1, l2, feed, metrics: cacheMetrics(new MetricsRegistry({ defaultMetrics: false })), clock: Date.now });
  return { tier, l2, writer: new PublishingKvNode(tier, feed), close: () => tier.close() };
}

beforeAll(async () => {
  servers = await Promise.all([0, 1, 2].map(() => startRedis()));
  [a, b] = await Promise.all([shard("a", servers[0]!), shard("b", servers[1]!)]);
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all(servers.map((s) => s.stop()));
});

describe("writes during a migration: last write wins against the row wherever it is", () => {
  test("an older event for a key not yet moved is ignored, and no cache answers it before, during or after the move", async () => {
    const from: MigrationMember[] = [{ id: "a", weight: 1, node: a }];
    const to: MigrationMember[] = [...from, { id: "b", weight: 1, node: b }];
    const store = new ShardedStore(from);
    const p = await pod(store, servers[2]!.address);
    const all = Array.from({ length: ENTITIES }, (_, n) => n);
    // Straight to the shard: no cache holds any key yet, so a push's write-through is what L2 takes, and the
    // lookup after it fills L1 (the audit's probe: push, then look up).
    await store.putMany(all.map((n) => ({ key: key(n), row: seed(n) })));

    const toRing = new HashRing(to);
    const moving = all.filter((n) => toRing.ownerIndexOf(key(n), ringKeyStart(key(n))) === 1);
    expect(moving.length).toBeGreaterThan(ENTITIES / 4);
    const push = (ns: readonly number[], ts: number, what: string) => p.writer.putMany(ns.map((n) => ({ key: key(n), row: { ts, values: [n, what] } })));

    // Held at its first scan: the ring has switched, no key has moved.
    const scanned = latch();
    const scanGo = latch();
    a.holdScan = { arrived: scanned.open, release: scanGo.wait };
    const migration = new Migration({ store, from, to, pageSize: 200, drainMs: 0 });
    const run = migration.run();
    await scanned.wait;
    const older1 = moving.slice(0, 50);
    const newer1 = moving.slice(50, 100);
    const outOlder1 = await push(older1, T0 - 1, "older");
    const outNewer1 = await push(newer1, T0 + 1, "newer");
    const during1 = await p.tier.getMany(older1.map(key));

    // Held at its first copy: rows read from the source, not yet at the destination.
    const copying = latch();
    const copyGo = latch();
    let copy: readonly KvEntry[] = [];
    b.holdPut = {
      arrived: (entries) => {
        copy = entries;
        copying.open();
      },
      release: copyGo.wait,
    };
    scanGo.open();
    await copying.wait;
    const inCopy = copy.map((e) => Number(e.key.slice(e.key.indexOf("=m") + 2))).filter((n) => !older1.includes(n) && !newer1.includes(n));
    expect(inCopy.length).toBeGreaterThanOrEqual(40);
    const older2 = inCopy.slice(0, 20);
    const newer2 = inCopy.slice(20, 40);
    const outOlder2 = await push(older2, T0 - 1, "older");
    const outNewer2 = await push(newer2, T0 + 2, "newer");
    const during2 = await p.tier.getMany(older2.map(key));
    copyGo.open();

    const done = await run;
    expect(done.state).toBe("done");
    const older = [...older1, ...older2];
    const want = (n: number): StoredRow => (newer1.includes(n) ? { ts: T0 + 1, values: [n, "newer"] } : newer2.includes(n) ? { ts: T0 + 2, values: [n, "newer"] } : seed(n));
    const probe = [...older, ...newer1, ...newer2];

    // This pod (its L1 filled by the lookups during the move): the newest row of each, not the older event's.
    const afterL1 = await p.tier.getMany(probe.map(key));
    const wrong = probe.filter((n, i) => afterL1[i] === UNAVAILABLE || afterL1[i]?.ts !== want(n).ts);
    expect({ wrong: wrong.length, older: wrong.filter((n) => older.includes(n)).length }).toEqual({ wrong: 0, older: 0 });
    expect(afterL1).toEqual(probe.map(want));
    // L2, which other pods read: never a row older than the newest.
    const inL2 = await p.l2.read(older.map(key));
    expect(Array.isArray(inL2)).toBe(true);
    expect((inL2 as Array<StoredRow | 0 | undefined>).filter((s) => typeof s === "object" && s.ts < T0)).toEqual([]);
    // A pod that starts now (empty L1, the same L2): the same.
    const fresh = await pod(store, servers[2]!.address);
    expect(await fresh.tier.getMany(probe.map(key))).toEqual(probe.map(want));
    await fresh.close();
    // The destination holds the newest rows.
    expect(await b.getManyPrimary(probe.map(key))).toEqual(probe.map(want));

    // Older events were ignored and said so; newer ones were written. During the move, reads answered the newest row.
    expect([outOlder1, outOlder2]).toEqual([
      { written: 0, ignored: 50, sameTime: 0 },
      { written: 0, ignored: 20, sameTime: 0 },
    ]);
    expect([outNewer1, outNewer2]).toEqual([
      { written: 50, ignored: 0, sameTime: 0 },
      { written: 20, ignored: 0, sameTime: 0 },
    ]);
    expect(during1).toEqual(older1.map(seed));
    expect(during2).toEqual(older2.map(seed));
    // So the migration's copy never replaced a row at the destination (that a cache could hold): it only filled
    // empty slots, and lost to the newer writes (counted as newer at the destination).
    expect(b.replaced).toEqual([]);
    expect(done.newerAtDestination).toBe(newer1.length + newer2.length);
    expect(done.movedKeys).toBe(moving.length);
    await p.close();
  }, 60_000);
});
