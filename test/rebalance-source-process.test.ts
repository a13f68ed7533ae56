import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ringKeyStart } from "../src/kv/keys.ts";
import type { KvEntry, ScanPage } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { guardShard, IGNORE_OBSERVER, type ShardNode } from "../src/resilience/shards.ts";
import { HashRing } from "../src/ring/ring.ts";
import type { Discovery } from "../src/shard/discovery.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { Migration, type MigrationMember } from "../src/shard/rebalance.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { SentinelDiscovery } from "../src/shard/sentinel-discovery.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { DelegatingShard } from "./support/delegating-shard.ts";
import { type RedisProcess, startRedis, startReplicationGroup } from "./support/redis-process.ts";

/**
 * A migration whose source shard's primary becomes another redis-server
 * process while keys move: a SCAN cursor means something only to the process
 * that issued it (its hash seed and table size), so the scan must start again
 * or it skips keys, which then stay on the source after the migration is
 * done, where nothing reads them (an audit: 1,765 and 2,366 of 40,000 keys
 * NOT_FOUND). Deterministic: the process changes at a fixed page, from a tap
 * on the source's scans (or with the migration paused by its own signal), not
 * after a sleep. The last test is the drain at the ring switch: a write routed
 * by the old ring and still in flight lands before the scan.
 */

const KEYS = 20_000;
const PAGE = 100;
/** The page after which the source changes process: ~4,000 of 20,000 keys scanned. */
const AT_PAGE = 40;
const key = (n: number): string => `feat@1/id=p${n}`;
const TUNING = { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function shard(id: string, discovery: Discovery): Promise<{ set: ReplicaSet; member: MigrationMember }> {
  const set = await ReplicaSet.connect({ id, discovery, ...TUNING });
  cleanups.push(() => set.close());
  return { set, member: { id, weight: 1, node: guardShard(set, TUNING, IGNORE_OBSERVER) } };
}

const staticShard = (id: string, server: RedisProcess) => shard(id, new StaticDiscovery({ primary: server.address, replicas: [] }));

async function server(options: Parameters<typeof startRedis>[0] = {}): Promise<RedisProcess> {
  const s = await startRedis(options);
  cleanups.push(() => s.stop());
  return s;
}

/**
 * The member with `after(pages)` run after each page its scans answer (before
 * the migration sees the page). Both scans are tapped, the one that names the
 * process and the plain one, so the test runs the same against a migration
 * that uses either.
 */
function tapScans(member: MigrationMember, after: (pages: number, page: ScanPage) => Promise<void> | void): MigrationMember {
  let pages = 0;
  const node = member.node as ShardNode;
  const tapped = new Proxy(node, {
    get(target, prop) {
      if (prop === "scan" || prop === "scanPrimary") {
        return async (cursor: string, count: number, ...rest: unknown[]) => {
          const page = await (target[prop] as (...args: unknown[]) => Promise<ScanPage>).call(target, cursor, count, ...rest);
          await after(++pages, page);
          return page;
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { ...member, node: tapped };
}

async function fill(store: ShardedStore): Promise<void> {
  for (let start = 0; start < KEYS; start += 1000) {
    const batch: KvEntry[] = [];
    for (let n = start; n < start + 1000; n++) batch.push({ key: key(n), row: { ts: 1000, values: [n] } });
    await store.putMany(batch);
  }
}

/** Keys that do not read back as written through `store` (NOT_FOUND, UNAVAILABLE or another row). */
async function unreadable(store: ShardedStore): Promise<number> {
  let bad = 0;
  for (let start = 0; start < KEYS; start += 5000) {
    const rows = await store.getMany(Array.from({ length: 5000 }, (_, j) => key(start + j)));
    rows.forEach((r, j) => {
      if (r === undefined || r === UNAVAILABLE || r.values[0] !== start + j) bad++;
    });
  }
  return bad;
}

async function totalSize(members: readonly MigrationMember[]): Promise<number> {
  const sizes = await Promise.all(members.map((m) => (m.node as ShardNode).size()));
  return sizes.reduce((a, b) => a + b, 0);
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe("a migration whose source primary becomes another process", () => {
  test("a source restarted while the migration is paused is scanned again from the start when it resumes; every key reads back", async () => {
    // AOF fsynced at every write: the restart keeps every row (what this test is about is the cursor, not the disk).
    const a = await server({ appendOnly: true, extra: ["appendfsync always"] });
    const b = await server();
    const dir = mkdtempSync(join(tmpdir(), "quiver-rebalance-process-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const checkpointPath = join(dir, "migration.json");
    const A = await staticShard("A", a);
    const B = await staticShard("B", b);
    const store = new ShardedStore([A.member]);
    await fill(store);
    const pause = new AbortController();
    const source = tapScans(A.member, (pages) => {
      if (pages === AT_PAGE) pause.abort();
    });
    const options = { pageSize: PAGE, drainMs: 0, retryDelayMs: 50, checkpointPath };
    const first = await new Migration({ store, from: [source], to: [source, B.member], ...options }).run(pause.signal);
    expect(first.state).toBe("paused");
    expect(first.sources.A?.cursor).not.toBe("0");

    // As after a restart of the server: the redis-server restarts (new run_id, same data), then a new migration
    // on new connections resumes from the checkpoint.
    await a.kill9();
    await a.restart();
    const A2 = await staticShard("A", a);
    const B2 = await staticShard("B", b);
    const store2 = new ShardedStore([A2.member]);
    const resumed = await new Migration({ store: store2, from: [A2.member], to: [A2.member, B2.member], ...options }).run();
    console.log(JSON.stringify({ ...resumed, sources: undefined }));
    expect(resumed.state).toBe("done");
    expect(await unreadable(store2)).toBe(0);
    expect(await totalSize([A2.member, B2.member])).toBe(KEYS);
    expect(resumed.rescans).toBe(1);
    expect(resumed.sources.A?.rescans).toBe(1);
  }, 90_000);

  test("a source restarted mid-migration (same address, new run_id) is scanned again from the start; every key reads back", async () => {
    const a = await server({ appendOnly: true, extra: ["appendfsync always"] });
    const b = await server();
    const A = await staticShard("A", a);
    const B = await staticShard("B", b);
    const store = new ShardedStore([A.member]);
    await fill(store);
    const source = tapScans(A.member, async (pages) => {
      if (pages !== AT_PAGE) return;
      await a.kill9();
      await a.restart();
    });
    const p = await new Migration({ store, from: [source], to: [source, B.member], pageSize: PAGE, drainMs: 0, retryDelayMs: 50 }).run();
    console.log(JSON.stringify({ ...p, sources: undefined }));
    expect(p.state).toBe("done");
    expect(await unreadable(store)).toBe(0);
    expect(await totalSize([A.member, B.member])).toBe(KEYS);
    expect(p.rescans).toBe(1);
  }, 90_000);

  test("a source restarted after its scan finished is scanned again before the migration is done", async () => {
    const a = await server({ appendOnly: true, extra: ["appendfsync always"] });
    const b = await server();
    const A = await staticShard("A", a);
    const B = await staticShard("B", b);
    const store = new ShardedStore([A.member]);
    await fill(store);
    let restarted = false;
    const source = tapScans(A.member, async (_, page) => {
      if (page.cursor !== "0" || restarted) return;
      restarted = true;
      await a.kill9();
      await a.restart();
    });
    const p = await new Migration({ store, from: [source], to: [source, B.member], pageSize: PAGE, drainMs: 0, retryDelayMs: 50 }).run();
    expect(restarted).toBe(true);
    expect(p.state).toBe("done");
    expect(p.rescans).toBe(1);
    // The second pass found every moved key gone already: nothing moved twice.
    expect(p.movedKeys).toBe(p.copiedRows);
    expect(await unreadable(store)).toBe(0);
    expect(await totalSize([A.member, B.member])).toBe(KEYS);
  }, 90_000);

  test("a checkpoint written before cursors named their process resumes with that source scanned from the start", async () => {
    const a = await server();
    const b = await server();
    const dir = mkdtempSync(join(tmpdir(), "quiver-rebalance-process-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const checkpointPath = join(dir, "migration.json");
    const A = await staticShard("A", a);
    const B = await staticShard("B", b);
    const store = new ShardedStore([A.member]);
    await fill(store);
    const pause = new AbortController();
    const source = tapScans(A.member, (pages) => {
      if (pages === AT_PAGE) pause.abort();
    });
    const options = { store, to: [A.member, B.member], pageSize: PAGE, drainMs: 0, checkpointPath };
    expect((await new Migration({ ...options, from: [source] }).run(pause.signal)).state).toBe("paused");
    // As an older server wrote it: no `process`, no `rescans`.
    const saved = JSON.parse(readFileSync(checkpointPath, "utf8"));
    saved.sources.A.process = undefined;
    saved.counters.rescans = undefined;
    writeFileSync(checkpointPath, JSON.stringify(saved));
    const p = await new Migration({ ...options, from: [A.member] }).run();
    expect(p.state).toBe("done");
    expect(p.rescans).toBe(1);
    expect(await unreadable(store)).toBe(0);
    expect(await totalSize([A.member, B.member])).toBe(KEYS);
  }, 90_000);

  test("a source whose primary fails over mid-migration (Sentinel promotes its replica) is scanned again on the new primary; every key reads back", async () => {
    const group = await startReplicationGroup({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 });
    cleanups.push(() => group.stop());
    const b = await server();
    const A = await shard("A", new SentinelDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName }));
    const B = await staticShard("B", b);
    const store = new ShardedStore([A.member]);
    // Written with WAIT 1: the replica holds every row before the primary dies.
    await fill(store);
    const replica = group.replicas[0]!.address;
    const source = tapScans(A.member, async (pages) => {
      if (pages !== AT_PAGE) return;
      await group.primary.kill9();
      await until("the replica's promotion", () => A.set.primaryAddress === replica);
    });
    const p = await new Migration({ store, from: [source], to: [source, B.member], pageSize: PAGE, drainMs: 0, retryDelayMs: 100, pageRetries: 20 }).run();
    console.log(JSON.stringify({ ...p, sources: undefined }));
    expect(p.state).toBe("done");
    expect(await unreadable(store)).toBe(0);
    expect(await totalSize([A.member, B.member])).toBe(KEYS);
    expect(p.rescans).toBe(1);
    expect(p.sources.A?.process?.address).toBe(replica);
  }, 120_000);
});

describe("the ring switch at the start of a migration", () => {
  test("a write routed by the old ring and still in flight at the switch lands before the source is scanned; it reads back after done", async () => {
    const [a, b] = await Promise.all([server(), server()]);
    const A = await staticShard("A", a);
    const B = await staticShard("B", b);
    const toRing = new HashRing([A.member, B.member], { vnodesPerNode: 160 });
    // A key the new ring gives to B: written through the old ring, it lands on A.
    let late = "";
    for (let n = 0; late === ""; n++) if (toRing.ownerIndexOf(key(KEYS + n), ringKeyStart(key(KEYS + n))) === 1) late = key(KEYS + n);
    let release = (): void => {};
    const held = new Promise<void>((go) => {
      release = go;
    });
    // A's writes wait for `held`: as a write retried through a failover window would, long after the switch.
    const node = A.member.node as ShardNode;
    const slowWrites = new Proxy(node, {
      get(target, prop) {
        if (prop === "putMany") return async (entries: readonly KvEntry[], signal?: AbortSignal) => held.then(() => target.putMany(entries, signal));
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const store = new ShardedStore([{ ...A.member, node: slowWrites }]);
    const write = store.putMany([{ key: late, row: { ts: 5000, values: ["late"] } }]);
    // The held write goes on once the migration waits for writes in flight (with the fix), or else once the
    // source's first page has been scanned (one page holds every key): it then lands after that scan.
    const waits = store.writesSettled?.bind(store);
    if (waits) {
      store.writesSettled = () => {
        release();
        return waits();
      };
    }
    const source = tapScans({ ...A.member, node: slowWrites }, async (pages) => {
      if (pages !== 1) return;
      release();
      await write;
    });
    const p = await new Migration({ store, from: [source], to: [source, B.member], pageSize: 1000, drainMs: 0 }).run();
    expect(p.state).toBe("done");
    expect(await write).toMatchObject({ written: 1 });
    const [row] = await store.getMany([late]);
    expect(row === undefined || row === UNAVAILABLE ? row : row.values).toEqual(["late"]);
  }, 60_000);
});

test("a source that becomes another process at every pass fails the migration after maxRescans, not rescanning for ever; resumable once stable", async () => {
  const a = await server();
  const b = await server();
  const A = await staticShard("A", a);
  const B = await staticShard("B", b);
  const store = new ShardedStore([A.member]);
  const batch: KvEntry[] = Array.from({ length: 300 }, (_, n) => ({ key: key(n), row: { ts: 1000, values: [n] } }));
  await store.putMany(batch);
  // Every check of the source's primary (one after each pass) finds a new process, as a shard failing over again
  // and again would; its pages name the last one seen, so each pass itself is whole.
  let seen = 0;
  let flapping = true;
  class Flapping extends DelegatingShard {
    override async scanPrimary(cursor: string, count: number) {
      const page = await this.inner.scanPrimary(cursor, count);
      return flapping ? { ...page, process: { address: page.process.address, runId: `flap-${seen}` } } : page;
    }
    override async primaryProcess() {
      const now = await this.inner.primaryProcess();
      return flapping ? { address: now.address, runId: `flap-${++seen}` } : now;
    }
  }
  const source: MigrationMember = { ...A.member, node: new Flapping(A.member.node as ShardNode) };
  // Without a bound the run never ends: stopped here (a pause) after 50 rescans so the test ends either way.
  const stop = new AbortController();
  const migration = new Migration({ store, from: [source], to: [source, B.member], pageSize: 100, drainMs: 0, maxRescans: 5 });
  const watch = setInterval(() => {
    if (migration.progress().rescans >= 50) stop.abort();
  }, 5);
  let failure: unknown;
  try {
    await migration.run(stop.signal);
  } catch (error) {
    failure = error;
  } finally {
    clearInterval(watch);
  }
  const p = migration.progress();
  expect([p.state, p.rescans]).toEqual(["failed", 5]);
  expect(String(failure)).toContain("shard A's primary became another process 6 times in this run");
  expect(await unreadable300(store)).toBe(0);
  // Stable again: the same plan resumes and finishes.
  flapping = false;
  const done = await new Migration({ store, from: [source], to: [source, B.member], pageSize: 100, drainMs: 0, maxRescans: 5 }).run();
  expect(done.state).toBe("done");
  expect(await unreadable300(store)).toBe(0);
  expect(await totalSize([A.member, B.member])).toBe(300);

  async function unreadable300(s: ShardedStore): Promise<number> {
    const rows = await s.getMany(batch.map((e) => e.key));
    return rows.filter((r, n) => r === undefined || r === UNAVAILABLE || r.values[0] !== n).length;
  }
}, 60_000);
