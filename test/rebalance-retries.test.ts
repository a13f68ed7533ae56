import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvEntry, KvNode, PrimaryAccess } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { guardShard, IGNORE_OBSERVER, type ResilientShard } from "../src/resilience/shards.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { Migration, type MigrationMember } from "../src/shard/rebalance.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { DelegatingShard } from "./support/delegating-shard.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A migration whose destination shard stops answering (SIGSTOP of its
 * redis-server) for a while: its pages fail, are tried again with back-off,
 * and the migration completes once the shard is back; one that stays away
 * longer than the retries fails, and a reload of the same plan resumes it
 * from its checkpoint. Deterministic: the shard is stopped before the first
 * copy and resumed only once the migration has counted a retry.
 */

const ENTITIES = 4000;
const key = (n: number): string => `feat@1/id=r${n}`;

let source: RedisProcess;
let dest: RedisProcess;
let a: MigrationMember;
let b: MigrationMember;
const dir = mkdtempSync(join(tmpdir(), "quiver-rebalance-retries-"));

/** Bounds short enough that a stopped shard fails calls within a second, long enough for a loaded machine; breakers let trials through after 100 ms. */
async function shard(id: string, server: RedisProcess): Promise<MigrationMember> {
  const bounds = { readAttemptTimeoutMs: 500, requestTimeoutMs: 1000, attemptTimeoutMs: 300, ackTimeoutMs: 100, writeTimeoutMs: 300, writeRetries: 0, failoverWindowMs: 0, breakerOpenMs: 100, breakerRetrialMs: 100 };
  const set = await ReplicaSet.connect({ id, discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, ...bounds });
  return { id, weight: 1, node: guardShard(set, bounds, IGNORE_OBSERVER) };
}

async function fill(store: ShardedStore): Promise<void> {
  for (let start = 0; start < ENTITIES; start += 1000) {
    const batch: KvEntry[] = [];
    for (let n = start; n < start + 1000; n++) batch.push({ key: key(n), row: { ts: 1000, values: [n] } });
    await store.putMany(batch);
  }
}

/** Every entity reads back through `store`, and exactly ENTITIES keys exist across both shards. */
async function expectAll(store: ShardedStore): Promise<void> {
  const rows = await store.getMany(Array.from({ length: ENTITIES }, (_, n) => key(n)));
  expect(rows.filter((r, n) => r === undefined || r === UNAVAILABLE || r.values[0] !== n)).toHaveLength(0);
  const sizes = await Promise.all([a, b].map((m) => (m.node as ResilientShard).size()));
  expect(sizes[0]! + sizes[1]!).toBe(ENTITIES);
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

beforeAll(async () => {
  [source, dest] = await Promise.all([startRedis(), startRedis()]);
  [a, b] = await Promise.all([shard("a", source), shard("b", dest)]);
}, 30_000);

afterAll(async () => {
  dest?.resume();
  await Promise.all([a?.node.close(), b?.node.close()]);
  await Promise.all([source?.stop(), dest?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A source shard whose first compare-and-delete runs on the server and then
 * loses its reply (a timeout after the server did the work): the page fails
 * with the keys already gone from the source, and its next try's scan no
 * longer sees them.
 */
class LostDeleteReply extends DelegatingShard {
  lost = 0;
  /** Keys the call whose reply was lost deleted. */
  lostDeleted = 0;
  override close() {
    return Promise.resolve();
  }
  override async deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal) {
    const kept = await this.inner.deleteIfNotNewer(items, signal);
    if (this.lost++ === 0) {
      this.lostDeleted = items.length - kept.length;
      throw new Error(`lost reply: ${this.lostDeleted} keys were deleted`);
    }
    return kept;
  }
}

describe("a migration whose destination shard stops answering", () => {
  test("its failed pages are tried again, and it completes once the shard is back", async () => {
    const store = new ShardedStore([a]);
    await fill(store);
    dest.pause();
    const migration = new Migration({ store, from: [a], to: [a, b], pageSize: 500, drainMs: 10, retryDelayMs: 50 });
    const run = migration.run();
    try {
      await until("a retried page", () => migration.progress().retriedPages >= 1);
    } finally {
      dest.resume();
    }
    const p = await run;
    console.log(JSON.stringify({ ...p, sources: undefined }));
    expect(p.state).toBe("done");
    expect(p.retriedPages).toBeGreaterThanOrEqual(1);
    expect(p.error).toBeNull();
    expect(p.scannedKeys).toBe(ENTITIES); // a page tried again is counted once
    expect(p.movedFraction).toBeGreaterThan(0.5 * 0.75);
    expect(p.movedFraction).toBeLessThan(0.5 * 1.25);
    expect(store.members.map((m) => m.id)).toEqual(["a", "b"]);
    await expectAll(store);
  }, 30_000);

  test("away for longer than its retries, the migration fails, keeps every key readable, and a rerun of the plan resumes it", async () => {
    // Back to one shard: everything on `a` again.
    const back = new ShardedStore([a, b]);
    const home = await new Migration({ store: back, from: [a, b], to: [a], pageSize: 500, drainMs: 10 }).run();
    expect(home.state).toBe("done");

    const store = new ShardedStore([a]);
    const checkpointPath = join(dir, "migration.json");
    const options = { store, from: [a], to: [a, b], pageSize: 500, drainMs: 10, retryDelayMs: 20, pageRetries: 2, checkpointPath };
    dest.pause();
    try {
      const failed = new Migration(options);
      await expect(failed.run()).rejects.toThrow();
      const p = failed.progress();
      console.log(JSON.stringify({ ...p, sources: undefined }));
      expect(p.state).toBe("failed");
      expect(p.retriedPages).toBe(2);
      expect(p.error).toBeString();
      // The store still routes by the new ring: no key reads as absent (those `b` owns read UNAVAILABLE while it is stopped).
      const rows = await store.getMany(Array.from({ length: 200 }, (_, n) => key(n * 20)));
      expect(rows.filter((r) => r === undefined)).toHaveLength(0);
      expect(rows.filter((r) => r !== UNAVAILABLE).length).toBeGreaterThan(0);
    } finally {
      dest.resume();
    }
    const resumed = new Migration(options);
    const p = await resumed.run();
    expect(p.state).toBe("done");
    expect(p.retriedPages).toBeGreaterThanOrEqual(2); // carried over from the checkpoint
    await expectAll(store);
  }, 30_000);

  test("a page whose delete ran but whose reply was lost is tried again and counts every key it moved, once", async () => {
    const back = new ShardedStore([a, b]);
    expect((await new Migration({ store: back, from: [a, b], to: [a], pageSize: 500, drainMs: 10 }).run()).state).toBe("done");
    await fill(new ShardedStore([a])); // on its own (bun test -t), nothing is there yet; after the tests above, a replay
    const source = new LostDeleteReply(a.node as KvNode & PrimaryAccess);
    const lossy: MigrationMember = { id: "a", weight: 1, node: source };
    const store = new ShardedStore([lossy]);
    const p = await new Migration({ store, from: [lossy], to: [lossy, b], pageSize: 500, drainMs: 10, retryDelayMs: 20 }).run();
    console.log(JSON.stringify({ ...p, sources: undefined }));
    expect(source.lost).toBeGreaterThan(1);
    expect(p.state).toBe("done");
    expect(p.retriedPages).toBe(1);
    const sizes = await Promise.all([a, b].map((m) => (m.node as ResilientShard).size()));
    expect(sizes[0]! + sizes[1]!).toBe(ENTITIES);
    // The first page's keys that moved before the lost reply are counted: moved is what `b` now holds.
    expect(p.movedKeys).toBe(sizes[1]!);
    expect(p.scannedKeys).toBe(ENTITIES);
    expect(source.lostDeleted).toBeGreaterThan(0);
    // Deletions are counted where their reply came back.
    expect(p.deletedKeys).toBe(p.movedKeys - source.lostDeleted);
    await expectAll(store);
  }, 30_000);
});
