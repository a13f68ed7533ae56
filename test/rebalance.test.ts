import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvEntry } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { Migration, type MigrationMember } from "../src/shard/rebalance.ts";
import { guardShard, IGNORE_OBSERVER, type ShardNode } from "../src/resilience/shards.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Online rebalancing on real Redis: 100k entities on 3 shards, then a 4th is
 * added, one removed, and an interrupted migration resumed. While keys move,
 * a reader checks that no key is ever missing and a writer keeps updating
 * keys (its newer rows must win over the migration's copies).
 */

const ENTITIES = 100_000;
const key = (n: number): string => `feat@1/id=i${n}`;

let servers: RedisProcess[] = [];
let shards: MigrationMember[] = [];
let store: ShardedStore;
const dir = mkdtempSync(join(tmpdir(), "quiver-rebalance-"));
/** Newest value per entity: [event time, payload]. */
const expected = new Map<number, [number, string]>();

beforeAll(async () => {
  servers = await Promise.all([0, 1, 2, 3].map(() => startRedis()));
  shards = await Promise.all(
    servers.map(async (s, i) => ({
      id: `s${i + 1}`,
      weight: 1,
      // Behind their policies like in production, with bounds generous enough for a loaded test machine.
      node: guardShard(
        await ReplicaSet.connect({ id: `s${i + 1}`, discovery: new StaticDiscovery({ primary: s.address, replicas: [] }), readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 }),
        { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 },
        IGNORE_OBSERVER,
      ),
    })),
  );
  store = new ShardedStore(shards.slice(0, 3));
  for (let start = 0; start < ENTITIES; start += 2000) {
    const batch: KvEntry[] = [];
    for (let n = start; n < start + 2000; n++) {
      batch.push({ key: key(n), row: { ts: 1000, values: [n, "v1"] } });
      expected.set(n, [1000, "v1"]);
    }
    await store.putMany(batch);
  }
}, 30_000);

afterAll(async () => {
  await Promise.all(shards.map((s) => s.node.close()));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a migration while a reader and a writer hammer the store; answers the reader's misses and wrong values. */
async function migrateUnderLoad(migration: Migration, signal?: AbortSignal): Promise<{ misses: number; stale: number; reads: number; writes: number }> {
  let running = true;
  let seq = 0;
  const counts = { misses: 0, stale: 0, reads: 0, writes: 0 };
  const reader = async (): Promise<void> => {
    for (let i = 0; running && i < 1_000_000; i++) {
      const ids = Array.from({ length: 50 }, (_, j) => (i * 7919 + j * 104_729) % ENTITIES);
      // Acknowledged before the read started, so the read must see at least this.
      const wants = ids.map((n) => expected.get(n)![0]);
      const rows = await store.getMany(ids.map(key));
      rows.forEach((row, j) => {
        if (row === undefined || row === UNAVAILABLE || row.values[0] !== ids[j]) counts.misses++;
        else if (row.ts < wants[j]!) counts.stale++;
      });
      counts.reads++;
      await Bun.sleep(1);
    }
  };
  const writer = async (): Promise<void> => {
    for (let i = 0; running && i < 1_000_000; i++) {
      const n = (i * 15_485_863) % ENTITIES;
      const ts = 2000 + ++seq;
      await store.putMany([{ key: key(n), row: { ts, values: [n, `w${ts}`] } }]);
      expected.set(n, [ts, `w${ts}`]);
      counts.writes++;
      await Bun.sleep(1);
    }
  };
  const work = migration.run(signal).finally(() => {
    running = false;
  });
  await Promise.all([work, reader(), writer()]);
  return counts;
}

/** Every entity reads back with its newest value, and exactly ENTITIES keys exist across the given shards. */
async function expectAllData(on: readonly MigrationMember[]): Promise<void> {
  let wrong = 0;
  for (let start = 0; start < ENTITIES; start += 5000) {
    const ids = Array.from({ length: 5000 }, (_, j) => start + j);
    const rows = await store.getMany(ids.map(key));
    rows.forEach((row, j) => {
      const [ts, payload] = expected.get(ids[j]!)!;
      if (row === undefined || row === UNAVAILABLE || row.ts !== ts || row.values[1] !== payload) wrong++;
    });
  }
  expect(wrong).toBe(0);
  const sizes = await Promise.all(on.map((m) => (m.node as ShardNode).size()));
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(ENTITIES);
}

describe("online rebalancing (3 shards, 100k entities)", () => {
  test("adding a 4th shard moves about 1/4 of the keys; reads never miss; newer writes win", async () => {
    const migration = new Migration({ store, from: shards.slice(0, 3), to: shards, pageSize: 1000, drainMs: 100 });
    const load = await migrateUnderLoad(migration);
    const p = migration.progress();
    console.log(JSON.stringify({ ...load, ...p, sources: undefined }));
    expect(p.state).toBe("done");
    expect(load.misses).toBe(0);
    expect(load.stale).toBe(0);
    expect(load.reads).toBeGreaterThan(0);
    expect(p.movedFraction).toBeGreaterThan(0.25 * 0.75);
    expect(p.movedFraction).toBeLessThan(0.25 * 1.25);
    expect(store.members.map((m) => m.id)).toEqual(["s1", "s2", "s3", "s4"]);
    await expectAllData(shards);
  }, 50_000);

  test("removing a shard moves only its keys; reads never miss", async () => {
    const to = [shards[0]!, shards[2]!, shards[3]!];
    const before = await (shards[1]!.node as ShardNode).size();
    const migration = new Migration({ store, from: shards, to, pageSize: 1000, drainMs: 100 });
    const load = await migrateUnderLoad(migration);
    const p = migration.progress();
    console.log(JSON.stringify({ ...load, ...p, sources: undefined }));
    expect(load.misses).toBe(0);
    expect(load.stale).toBe(0);
    expect(p.movedFraction).toBeGreaterThan(0.25 * 0.75);
    expect(p.movedFraction).toBeLessThan(0.25 * 1.25);
    expect(p.movedKeys).toBeLessThanOrEqual(before);
    expect(await (shards[1]!.node as ShardNode).size()).toBe(0);
    await expectAllData(to);
  }, 50_000);

  test("an interrupted migration resumes from its checkpoint", async () => {
    const from = [shards[0]!, shards[2]!, shards[3]!];
    const checkpointPath = join(dir, "migration.json");
    const options = { store, from, to: shards, pageSize: 1000, drainMs: 50, checkpointPath };
    const first = new Migration(options);
    const abort = new AbortController();
    const watcher = setInterval(() => {
      if (first.progress().scannedKeys >= 30_000) abort.abort();
    }, 5);
    const load1 = await migrateUnderLoad(first, abort.signal);
    clearInterval(watcher);
    expect(first.progress().state).toBe("paused");
    expect(existsSync(checkpointPath)).toBe(true);

    const second = new Migration(options);
    const resumedFrom = second.progress().scannedKeys;
    expect(resumedFrom).toBeGreaterThanOrEqual(30_000);
    const load2 = await migrateUnderLoad(second);
    const p = second.progress();
    console.log(JSON.stringify({ resumedFrom, misses: load1.misses + load2.misses, ...p, sources: undefined }));
    expect(p.state).toBe("done");
    expect(load1.misses + load2.misses).toBe(0);
    expect(load1.stale + load2.stale).toBe(0);
    expect(p.scannedKeys).toBeLessThan(ENTITIES * 1.1); // resumed, not restarted
    expect(p.movedFraction).toBeGreaterThan(0.25 * 0.75);
    expect(p.movedFraction).toBeLessThan(0.25 * 1.25);
    expect(existsSync(checkpointPath)).toBe(false);
    await expectAllData(shards);
  }, 50_000);
});
