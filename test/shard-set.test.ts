import { afterAll, beforeAll, expect, spyOn, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvEntry } from "../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { connectShards, parseTopology, type Topology } from "../src/shard/index.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/** Topology reloads through the shard set: add, remove, and a migration resumed after a "restart". */

const ENTITIES = 20_000;
const key = (n: number): string => `user@2/id=i${n}`;
let servers: RedisProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), "quiver-shardset-"));

beforeAll(async () => {
  servers = await Promise.all([0, 1, 2, 3].map(() => startRedis()));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const topology = (...indexes: number[]): Topology =>
  parseTopology({
    // Bounds generous enough for a loaded test machine: these tests are about where keys live.
    defaults: { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 },
    shards: indexes.map((i) => ({ name: `s${i + 1}`, primary: servers[i]!.address })),
  });

async function missing(store: ShardedStore): Promise<number> {
  let bad = 0;
  for (let start = 0; start < ENTITIES; start += 5000) {
    const rows = await store.getMany(Array.from({ length: 5000 }, (_, j) => key(start + j)));
    rows.forEach((row, j) => {
      if (row === undefined || row === UNAVAILABLE || row.values[0] !== start + j) bad++;
    });
  }
  return bad;
}

test("reloading a topology adds and removes shards while serving, and closes removed ones", async () => {
  const shards = await connectShards(topology(0, 1, 2));
  const store = new ShardedStore(shards.members);
  try {
    for (let start = 0; start < ENTITIES; start += 2000) {
      const batch: KvEntry[] = Array.from({ length: 2000 }, (_, j) => ({ key: key(start + j), row: { ts: 1, values: [start + j] } }));
      await store.putMany(batch);
    }
    const added = await shards.reconfigure(topology(0, 1, 2, 3), store, { drainMs: 10 });
    expect(added).toBeDefined();
    await shards.settled();
    expect(added!.progress()).toMatchObject({ state: "done", from: ["s1", "s2", "s3"], to: ["s1", "s2", "s3", "s4"] });
    expect(store.members.map((m) => m.id)).toEqual(["s1", "s2", "s3", "s4"]);
    expect(await missing(store)).toBe(0);

    expect(await shards.reconfigure(topology(0, 1, 2, 3), store)).toBeUndefined(); // nothing changes

    const removed = await shards.reconfigure(topology(0, 2, 3), store, { drainMs: 10 });
    await shards.settled();
    expect(removed!.progress().state).toBe("done");
    expect(shards.stats().map((s) => [s.id, s.inRing])).toEqual([
      ["s1", true],
      ["s3", true],
      ["s4", true],
    ]);
    expect(await missing(store)).toBe(0);

    const moved = parseTopology({ shards: [{ name: "s1", primary: servers[1]!.address }] });
    await expect(shards.reconfigure(moved, store)).rejects.toThrow('shards[0]: shard "s1" changed addresses');
  } finally {
    await shards.close();
  }
}, 40_000);

test("a migration interrupted by a restart resumes from its checkpoint at start-up", async () => {
  const checkpointPath = join(dir, "migration.json");
  const before = await connectShards(topology(0, 2, 3));
  const store1 = new ShardedStore(before.members);
  const first = await before.reconfigure(topology(0, 1, 2, 3), store1, { checkpointPath, pageSize: 50, drainMs: 10 });
  for (let i = 0; i < 400 && first!.progress().scannedKeys < 4000; i++) await Bun.sleep(5);
  await before.close(); // the shutdown: connections go away mid-migration
  await before.settled();
  // Paused, not failed: closing stops the migration rather than letting it try its pages again on closed shards.
  expect(first!.progress().state).toBe("paused");
  expect(existsSync(checkpointPath)).toBe(true);

  const after = await connectShards(topology(0, 1, 2, 3));
  const store2 = new ShardedStore(after.members);
  try {
    const resumed = await after.resume(store2, checkpointPath);
    expect(resumed).toBeDefined();
    expect(resumed!.progress().scannedKeys).toBeGreaterThan(0);
    await after.settled();
    const p = resumed!.progress();
    expect(p.state).toBe("done");
    expect(p.scannedKeys).toBeLessThan(ENTITIES * 1.2);
    expect(existsSync(checkpointPath)).toBe(false);
    expect(await missing(store2)).toBe(0);
    expect(await after.resume(store2, checkpointPath)).toBeUndefined();
  } finally {
    await after.close();
  }
}, 40_000);

test("a shutdown pauses a running migration at a whole page while its shards are open; reloading the topology resumes it", async () => {
  const checkpointPath = join(dir, "paused.json");
  const shards = await connectShards(topology(0, 1, 2, 3));
  const store = new ShardedStore(shards.members);
  try {
    expect(await missing(store)).toBe(0);
    const first = await shards.reconfigure(topology(0, 1, 2), store, { checkpointPath, pageSize: 50, drainMs: 10 });
    for (let i = 0; i < 400 && first!.progress().scannedKeys < 2000; i++) await Bun.sleep(5);
    await shards.pauseMigration();
    const paused = first!.progress();
    expect(paused.state).toBe("paused");
    expect(paused.error).toBeNull();
    expect(existsSync(checkpointPath)).toBe(true);
    // Paused halfway, every key still reads (the new ring, reading through to the old owners).
    expect(await missing(store)).toBe(0);

    const resumed = await shards.reconfigure(topology(0, 1, 2), store, { checkpointPath, pageSize: 50, drainMs: 10 });
    expect(resumed).toBeDefined();
    expect(resumed!.progress().scannedKeys).toBeGreaterThanOrEqual(paused.scannedKeys);
    await shards.settled();
    expect(resumed!.progress().state).toBe("done");
    expect(existsSync(checkpointPath)).toBe(false);
    expect(await missing(store)).toBe(0);
  } finally {
    await shards.close();
  }
}, 40_000);

test("a second reload while the first is still connecting its shards is refused; one migration runs", async () => {
  const shards = await connectShards(topology(0, 1, 2));
  const store = new ShardedStore(shards.members);
  try {
    const next = topology(0, 1, 2, 3);
    const [first, second] = await Promise.allSettled([shards.reconfigure(next, store, { drainMs: 10 }), shards.reconfigure(next, store, { drainMs: 10 })]);
    expect(first.status).toBe("fulfilled");
    expect(second.status).toBe("rejected");
    expect((second as PromiseRejectedResult).reason).toMatchObject({ kind: "failed_precondition", code: "reload_in_progress" });
    expect((first as PromiseFulfilledResult<unknown>).value).toBeDefined();
    await shards.settled();
    expect(shards.migration!.progress().state).toBe("done");
    expect(shards.members.map((m) => m.id)).toEqual(["s1", "s2", "s3", "s4"]);
    expect(await missing(store)).toBe(0);
  } finally {
    await shards.close();
  }
}, 40_000);

test("a shard a reload adds is given the layout ledger before keys move: after the old shards go, a reordered list is still refused", async () => {
  const [a, b] = await Promise.all([startRedis(), startRedis()]);
  const only = (server: RedisProcess, name: string): Topology => parseTopology({ defaults: { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 }, shards: [{ name, primary: server.address }] });
  const shards = await connectShards(only(a, "a"));
  const store = new ShardedStore(shards.members);
  try {
    const original = [{ field: "v@1", layout: "x:float64\ny:float64" }];
    expect((await shards.reconcile(original)).mismatches).toEqual([]);
    await store.putMany([{ key: "v@1/id=i1", row: { ts: 1, values: [111, 222] } }]);
    const moved = await shards.reconfigure(only(b, "b"), store, { drainMs: 10 });
    await shards.settled();
    expect(moved!.progress().state).toBe("done");
    // Shard b was never given the ledger: this swapped list was accepted and the moved row read back swapped.
    const { mismatches } = await shards.reconcile([{ field: "v@1", layout: "y:float64\nx:float64" }]);
    expect(mismatches.map((m) => [m.field, m.stored])).toEqual([["v@1", "x:float64\ny:float64"]]);
  } finally {
    await shards.close();
    await Promise.all([a, b].map((s) => s.stop()));
  }
});

test("two pods recording different layouts at once: the one whose record conflicts is refused, not silently kept", async () => {
  const server = await startRedis();
  const one = parseTopology({ shards: [{ name: "s", primary: server.address }] });
  const [podA, podB] = await Promise.all([connectShards(one), connectShards(one)]);
  try {
    const base = "x:float64\ny:float64";
    expect((await podA.reconcile([{ field: "v@1", layout: base }])).mismatches).toEqual([]);
    // Pod B records its appended list between pod A's check and its record (pod A's replies delayed, in the audit).
    const set = (podA as unknown as { sets: Map<string, { reconcileLayouts: (l: unknown, m: string) => Promise<unknown[]> }> }).sets.get("s")!;
    const inner = set.reconcileLayouts.bind(set);
    set.reconcileLayouts = async (layouts, mode) => {
      const out = await inner(layouts, mode);
      if (mode === "check") expect((await podB.reconcile([{ field: "v@1", layout: `${base}\ne:string` }])).mismatches).toEqual([]);
      return out;
    };
    const { mismatches } = await podA.reconcile([{ field: "v@1", layout: `${base}\nd:int64` }]);
    expect(mismatches.map((m) => [m.field, m.stored])).toEqual([["v@1", `${base}\ne:string`]]);
  } finally {
    await Promise.all([podA.close(), podB.close()]);
    await server.stop();
  }
});

test("a move's end is recorded on every shard, retried while one cannot take it: a later start is not refused as still moving", async () => {
  const own = await Promise.all([0, 1, 2].map(() => startRedis()));
  const shape = (...indexes: number[]): Topology => parseTopology({ defaults: { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 }, shards: indexes.map((i) => ({ name: `m${i + 1}`, primary: own[i]!.address })) });
  const shards = await connectShards(shape(0, 1));
  const store = new ShardedStore(shards.members);
  try {
    await store.putMany(Array.from({ length: 500 }, (_, j) => ({ key: key(j), row: { ts: 1, values: [j] } })));
    expect(await shards.settlePlacement(store, join(dir, "unused.json"), false)).toBeUndefined();
    // m2 takes the move's record, then refuses the next two writes of it (a blip as the move ends).
    const m2 = (shards as unknown as { sets: Map<string, { writePlacement(record: string): Promise<void> }> }).sets.get("m2")!;
    const write = m2.writePlacement.bind(m2);
    let writes = 0;
    m2.writePlacement = async (record) => {
      writes++;
      if (writes === 2 || writes === 3) throw new Error("connection lost");
      return write(record);
    };
    const moved = await shards.reconfigure(shape(0, 1, 2), store, { drainMs: 10 });
    await shards.settled();
    expect(moved!.progress().state).toBe("done");
    expect(writes).toBe(4);
    // Before, m2 kept {movingTo}, and this start was refused ("being moved ... by a topology change that has not finished").
    const records = await Promise.all(shards.members.map((m) => (shards as unknown as { sets: Map<string, { readPlacement(): Promise<string | null> }> }).sets.get(m.id)!.readPlacement()));
    for (const r of records) expect(JSON.parse(r!).movingTo).toBeUndefined();
    const again = await connectShards(shape(0, 1, 2));
    try {
      expect(await again.settlePlacement(new ShardedStore(again.members), join(dir, "unused2.json"), false)).toBeUndefined();
    } finally {
      await again.close();
    }
  } finally {
    await shards.close();
    await Promise.all(own.map((s) => s.stop()));
  }
}, 40_000);

test("a move's end record still being retried stops when the next move starts: it never replaces the next move's record", async () => {
  const own = await Promise.all([0, 1, 2].map(() => startRedis()));
  const shape = (...indexes: number[]): Topology => parseTopology({ defaults: { readAttemptTimeoutMs: 2000, requestTimeoutMs: 5000 }, shards: indexes.map((i) => ({ name: `e${i + 1}`, primary: own[i]!.address })) });
  const shards = await connectShards(shape(0, 1));
  const store = new ShardedStore(shards.members);
  const logged = spyOn(console, "error").mockImplementation(() => {});
  try {
    await store.putMany(Array.from({ length: 300 }, (_, j) => ({ key: key(j), row: { ts: 1, values: [j] } })));
    expect(await shards.settlePlacement(store, join(dir, "unused3.json"), false)).toBeUndefined();
    type Writable = { writePlacement(record: string): Promise<void> };
    const sets = (shards as unknown as { sets: Map<string, Writable> }).sets;
    const writes: Array<{ shard: string; record: { ring: string; movingTo?: string } }> = [];
    let e2Down = true;
    for (const id of ["e1", "e2"]) {
      const set = sets.get(id)!;
      const write = set.writePlacement.bind(set);
      set.writePlacement = async (record) => {
        const parsed = JSON.parse(record) as { ring: string; movingTo?: string };
        // e2 takes the first move's record, then is down for its end record.
        if (id === "e2" && e2Down && parsed.movingTo === undefined) throw new Error("connection lost");
        writes.push({ shard: id, record: parsed });
        return write(record);
      };
    }
    const first = await shards.reconfigure(shape(0, 1, 2), store, { drainMs: 10 });
    await eventually("the first move done", () => first!.progress().state === "done", 20_000);
    // Its end record is being retried (e2 refuses it); the operator moves back.
    const firstTarget = writes.find((w) => w.record.movingTo === undefined)!.record.ring;
    const second = await shards.reconfigure(shape(0, 1), store, { drainMs: 10 });
    const from = writes.length;
    e2Down = false;
    await shards.settled();
    expect(second!.progress().state).toBe("done");
    // The first move's loop tried again every second: give it two more of its ticks (a fixed wait cannot make this
    // pass wrongly; at worst a very slow machine lets it pass without the fix).
    await Bun.sleep(2500);
    // Before, the first move's loop went on writing its settled ring every second, over the second move's record.
    expect(writes.slice(from).filter((w) => w.record.ring === firstTarget && w.record.movingTo === undefined)).toEqual([]);
    const records = await Promise.all(["e1", "e2"].map((id) => (sets.get(id) as unknown as { readPlacement(): Promise<string | null> }).readPlacement()));
    for (const r of records) expect(JSON.parse(r!)).toMatchObject({ ring: writes.at(-1)!.record.ring });
    expect(records.map((r) => JSON.parse(r!).movingTo)).toEqual([undefined, undefined]);
  } finally {
    logged.mockRestore();
    await shards.close();
    await Promise.all(own.map((s) => s.stop()));
  }
}, 60_000);

test("a checkpoint left unreadable (truncated) stops the start naming the file, not a refusal that blames a missing checkpoint", async () => {
  const checkpointPath = join(dir, "truncated.json");
  const before = await connectShards(topology(0, 2, 3));
  const store1 = new ShardedStore(before.members);
  try {
    await store1.putMany(Array.from({ length: 2000 }, (_, j) => ({ key: `trunc/id=${j}`, row: { ts: 1, values: [j] } })));
    // A paused move whose checkpoint a bad disk (or a hand edit) then cut short.
    const first = await before.reconfigure(topology(0, 1, 2, 3), store1, { checkpointPath, pageSize: 10, drainMs: 10 });
    for (let i = 0; i < 2000 && !existsSync(checkpointPath); i++) await Bun.sleep(5);
    await before.pauseMigration();
    expect(first!.progress().state).toBe("paused");
  } finally {
    await before.close();
  }
  const text = readFileSync(checkpointPath, "utf8");
  writeFileSync(checkpointPath, text.slice(0, Math.floor(text.length / 2)));

  const after = await connectShards(topology(0, 1, 2, 3));
  const store2 = new ShardedStore(after.members);
  try {
    await expect(after.settlePlacement(store2, checkpointPath, false)).rejects.toMatchObject({
      code: "checkpoint_unreadable",
      message: expect.stringContaining(`${checkpointPath}: the migration checkpoint cannot be read`),
    });
    // Moved aside, the start is refused by the shards' record of the move, and --migrate-on-start takes it over.
    rmSync(checkpointPath);
    await expect(after.settlePlacement(store2, checkpointPath, false)).rejects.toMatchObject({ code: "placement_mismatch" });
    const taken = await after.settlePlacement(store2, checkpointPath, true, { drainMs: 10 });
    await after.settled();
    expect(taken!.progress().state).toBe("done");
  } finally {
    await after.close();
  }
}, 40_000);
