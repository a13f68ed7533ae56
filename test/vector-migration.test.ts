import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ringKeyStart } from "../src/kv/keys.ts";
import type { KvEntry, PutOutcome, StoredRow } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { guardShard, IGNORE_OBSERVER } from "../src/resilience/shards.ts";
import { HashRing } from "../src/ring/ring.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { Migration, type MigrationMember } from "../src/shard/rebalance.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { VectorIndexes } from "../src/vector/vector-indexes.ts";
import { DelegatingShard } from "./support/delegating-shard.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";
import { TestFeed } from "./support/test-feed.ts";
import { prng, unitVector } from "./support/vectors.ts";

/**
 * A vector index kept by catch-up scans while a migration moves keys, on real
 * Redis. During the move a key's new owner is read first (ReadThroughNode): a
 * row the migration has copied there hides a newer one a server still
 * writing by the old ring put at the source since, until the migration copies
 * that one too (not published: that server published its write). Such a read
 * answers an older row than one read before with nothing lost, and a catch-up
 * that takes the store's row "even when older" followed it back, for good.
 */

const registry = compileRegistry({
  entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
  featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 32 } }],
});
const ENTITIES = 200;
const key = (n: number): string => `items@1/item_id=i${n}`;
const row = (n: number, ts: number): StoredRow => ({ ts, values: [unitVector(8, prng(n * 100 + ts))] });

/** A latch: `wait` until `open()`. */
function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/** A shard whose next put, once armed, waits for the test (and hands it the entries). */
class HeldShard extends DelegatingShard {
  holdPut: { arrived: (entries: readonly KvEntry[]) => void; release: Promise<void> } | undefined;
  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const hold = this.holdPut;
    this.holdPut = undefined;
    if (hold) {
      hold.arrived(entries);
      await hold.release;
    }
    return this.inner.putMany(entries, signal);
  }
}

/** Arms `shard`'s next put: resolves `arrived` with its entries; it goes on once `release()` is called. */
function holdNextPut(shard: HeldShard): { arrived: Promise<readonly KvEntry[]>; release: () => void } {
  const go = latch();
  let arrived!: (entries: readonly KvEntry[]) => void;
  const got = new Promise<readonly KvEntry[]>((resolve) => {
    arrived = resolve;
  });
  shard.holdPut = { arrived, release: go.wait };
  return { arrived: got, release: go.open };
}

let servers: RedisProcess[] = [];
let a: HeldShard;
let b: HeldShard;

async function shard(id: string, server: RedisProcess): Promise<HeldShard> {
  const bounds = { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 };
  const set = await ReplicaSet.connect({ id, discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, ...bounds });
  return new HeldShard(guardShard(set, bounds, IGNORE_OBSERVER));
}

beforeAll(async () => {
  servers = await Promise.all([0, 1].map(() => startRedis()));
  [a, b] = await Promise.all([shard("a", servers[0]!), shard("b", servers[1]!)]);
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all(servers.map((s) => s.stop()));
});

describe("a vector index caught up while a migration moves keys", () => {
  test("a catch-up that reads a copied row hiding a newer one at the source keeps the newer vector", async () => {
    const from: MigrationMember[] = [{ id: "a", weight: 1, node: a }];
    const to: MigrationMember[] = [...from, { id: "b", weight: 1, node: b }];
    const store = new ShardedStore(from);
    const all = Array.from({ length: ENTITIES }, (_, n) => n + 1);
    await store.putMany(all.map((n) => ({ key: key(n), row: row(n, 5) })));
    const feed = new TestFeed();
    const vectors = new VectorIndexes({ store, feed, metrics: new MetricsRegistry(), snapshotIntervalMs: 0, embedders: { modelPath: "" }, readsSettled: () => !store.migrating });
    await vectors.start(registry);
    const vi = vectors.get("items")!;
    expect(vi.size).toBe(ENTITIES);
    const tsOf = (n: number) => vi.labels.tsOf(vi.labels.labelOf(key(n))!);
    const toRing = new HashRing(to);
    const moving = all.filter((n) => toRing.ownerIndexOf(key(n), ringKeyStart(key(n))) === 1);
    expect(moving.length).toBeGreaterThan(ENTITIES / 4);

    // The migration's first copy: rows read from a (ts 5), held before they are written to b.
    const firstCopy = holdNextPut(b);
    const run = new Migration({ store, from, to, pageSize: 1000, drainMs: 0 }).run();
    const copied = (await firstCopy.arrived).map((e) => e.key);
    expect(copied.length).toBe(moving.length);
    // A server still writing by the old ring writes every moving key at a (ts 9); this pod does not hear it.
    await a.putMany(moving.map((n) => ({ key: key(n), row: row(n, 9) })));
    // A catch-up (a gap; --vector-catch-up-interval without a shared feed): the keys are read at a, b has none yet.
    feed.listener!.onGap("test");
    await vectors.idle();
    expect(moving.filter((n) => tsOf(n) !== 9)).toEqual([]);

    // The copy lands (ts 5 at b); a's ts 9 rows are newer, kept there, and copied again: held, b still holds ts 5.
    const recopy = holdNextPut(b);
    firstCopy.release();
    expect((await recopy.arrived).map((e) => e.row.ts)).toEqual(moving.map(() => 9));
    // Another catch-up now: every moving key is read at b first, where the ts 5 copy answers.
    feed.listener!.onGap("test");
    await vectors.idle();
    recopy.release();
    expect((await run).state).toBe("done");

    // The store holds ts 9 for every key (published by its writer, not by the copy).
    const stored = await store.getMany(moving.map(key));
    expect(stored.every((r) => r !== UNAVAILABLE && r?.ts === 9)).toBe(true);
    // The index must too: it followed the copy back to ts 5 (every moving key) and, with nothing to hear, kept the
    // vectors lookups no longer answer until the next catch-up.
    const behind = moving.filter((n) => tsOf(n) !== 9);
    expect({ behind: behind.length, of: moving.length }).toEqual({ behind: 0, of: moving.length });
    await vectors.close();
  }, 30_000);
});
