import { describe, expect, test } from "bun:test";
import { errorHeaders, httpStatusOf } from "../api/http/error-status.ts";
import { runKvContract } from "../../test/kv-contract.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { KeyBatch } from "../kv/key-batch.ts";
import type { KvEntry } from "../kv/kv-node.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { ShardBreakerOpenError, ShardSaturatedError, ShardUnavailableError, StorageTimeoutError, StoreWriteError, storeMayHold } from "../kv/storage-errors.ts";
import { MeteredKvNode, MetricsRegistry } from "../ops/index.ts";
import { ShardedStore } from "./sharded-store.ts";

const arenas = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `a${i}`, weight: 1, node: new ArenaKvNode(`a${i}`) }));

runKvContract("ShardedStore of 4 ArenaKvNodes behind MeteredKvNode (the embedded default)", async () => {
  const ring = new ShardedStore(arenas(4));
  const node = new MeteredKvNode(ring, new MetricsRegistry({ defaultMetrics: false }));
  return { node, dispose: () => node.close() };
});

test("raw reads exist only while every member offers them, and follow membership changes", () => {
  const ring = new ShardedStore(arenas(2));
  expect(ring.rawNow).toBeDefined();
  ring.setMembers([...arenas(2), { id: "m", weight: 1, node: new MemoryKvNode("m") }]);
  expect(ring.rawNow).toBeUndefined();
  ring.setMembers(arenas(3));
  expect(ring.rawNow).toBeDefined();
});

test("raw reads across members report each key at its request index, and are metered as one read", async () => {
  const ring = new ShardedStore(arenas(4));
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const node = new MeteredKvNode(ring, metrics);
  const keys = Array.from({ length: 50 }, (_, i) => `v@1/driver_id=i${1000 + i}`);
  await node.putMany(keys.filter((_, i) => i % 3 !== 0).map((key, i) => ({ key, row: { ts: 100 + i, values: [i] } })));
  const now = node.getManyNow(keys)!;
  const seen: number[] = [];
  const batch = KeyBatch.of(keys);
  const found = node.rawNow!.readRaw(batch, batch.all, 0, batch.count, {
    row(index, _bytes, _view, _start, _end, ts) {
      seen.push(index);
      expect(ts).toBe((now[index] as { ts: number }).ts);
    },
  });
  // Members answer every key now: there is nothing to read through.
  expect(node.rawNow!.readThrough).toBeUndefined();
  // Grouped by member, each under its batch index.
  expect(seen.sort((a, b) => a - b)).toEqual(keys.map((_, i) => i).filter((i) => i % 3 !== 0));
  expect(found).toBe(seen.length);
  const text = await metrics.render();
  expect(text).toContain(`quiver_store_keys_total{op="get",result="found"} ${2 * seen.length}`);
  expect(text).toContain(`quiver_store_keys_total{op="get",result="missing"} ${2 * (keys.length - seen.length)}`);
});

test("writesSettled waits for the puts and deletes begun before it (failed ones too), not for later ones", async () => {
  const gates: Array<() => void> = [];
  const held = <T>(work: () => Promise<T>): Promise<T> => new Promise<void>((go) => gates.push(go)).then(work);
  const inner = new MemoryKvNode("m");
  const slow = Object.assign(Object.create(inner) as MemoryKvNode, {
    putMany: (entries: Parameters<MemoryKvNode["putMany"]>[0]) => held(() => inner.putMany(entries)),
    deleteMany: (keys: readonly string[]) => held(() => Promise.reject(new Error("test: delete failed"))).then(() => keys.length),
  });
  const ring = new ShardedStore([{ id: "m", weight: 1, node: slow }]);
  const put = ring.putMany([{ key: "v@1/id=i1", row: { ts: 1, values: [1] } }]);
  const del = ring.deleteMany(["v@1/id=i2"]).catch(() => "failed");
  let settled = false;
  const waiting = ring.writesSettled().then(() => {
    settled = true;
  });
  const later = ring.putMany([{ key: "v@1/id=i3", row: { ts: 1, values: [3] } }]);
  gates[0]!();
  await put;
  await Bun.sleep(0);
  expect(settled).toBe(false);
  gates[1]!();
  expect(await del).toBe("failed");
  await waiting;
  expect(settled).toBe(true);
  gates[2]!();
  await later;
  await ring.writesSettled();
});

describe("a write that fails on some shards", () => {
  /** Three memory nodes; `fail[i]` makes node i's writes fail with that error (after storing its share when `landsFirst`). */
  function ring(fail: Array<(() => Error) | undefined>, landsFirst = false) {
    const nodes = fail.map((f, i) => {
      const node = new MemoryKvNode(`m${i}`);
      if (f !== undefined) {
        const put = node.putMany.bind(node);
        node.putMany = async (entries: readonly KvEntry[]) => {
          if (landsFirst) await put(entries);
          throw f();
        };
      }
      return { id: `m${i}`, weight: 1, node };
    });
    const store = new ShardedStore(nodes);
    // Two keys owned by each node, the refusing node's first.
    const owned: string[][] = nodes.map(() => []);
    for (let i = 0; owned.some((k) => k.length < 2); i++) {
      const key = `v@1/id=i${i}`;
      const k = owned[nodes.findIndex((n) => n.node === store.nodeFor(key))]!;
      if (k.length < 2) k.push(key);
    }
    const entries = owned.flat().map((key, i) => ({ key, row: { ts: 10 + i, values: [i] } }));
    return { store, owned, entries };
  }
  const keysOf = (entries: readonly KvEntry[]) => entries.map((e) => e.key).sort();

  test("names the shares that may have landed (written, timed out), not one its shard refused before sending (breaker open); answers as the refusal did", async () => {
    const { store, owned, entries } = ring([() => new ShardBreakerOpenError("m0", "write", 12_000), undefined, () => new StorageTimeoutError("m2 write", 250)], true);
    const error = await store.putMany(entries).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreWriteError);
    const e = error as StoreWriteError;
    // The first failure's kind, code, message and Retry-After: the client still gets 503 + Retry-After 12.
    expect(e).toMatchObject({ kind: "unavailable", code: "shard_breaker_open", retryable: true, retryAfterSeconds: 12 });
    expect(e.message).toContain("breaker open");
    expect(httpStatusOf(e)).toBe(503);
    expect(errorHeaders(e, 503)).toEqual({ "retry-after": "12" });
    expect(keysOf(e.mayHaveLanded)).toEqual([...owned[1]!, ...owned[2]!].sort());
    expect(keysOf(storeMayHold(e, entries))).toEqual([...owned[1]!, ...owned[2]!].sort());
  });

  test("every share refused before sending: nothing may have landed; a failure of unknown kind: everything may have", async () => {
    const refused = ring([() => new ShardBreakerOpenError("m0", "write", 1000), () => new ShardSaturatedError("m1"), () => new ShardUnavailableError("m2", "write: no primary known", undefined, "nothing")]);
    const none = (await refused.store.putMany(refused.entries).catch((e: unknown) => e)) as StoreWriteError;
    expect(none.mayHaveLanded).toEqual([]);
    const unknown = ring([undefined, () => new Error("socket closed"), undefined], true);
    const all = (await unknown.store.putMany(unknown.entries).catch((e: unknown) => e)) as StoreWriteError;
    expect(all).toMatchObject({ kind: "unavailable", code: "unavailable", retryable: true, message: "storage write failed: socket closed" });
    expect(all.mayHaveLanded).toBe(unknown.entries);
    expect(errorHeaders(all, 503)).toEqual({ "retry-after": "1" });
  });
  test("a share of over a million entries is named whole (collected without spreading it into arguments)", async () => {
    // m0 takes ~99% of the keys and writes them; m1 refuses its share before sending. Collecting m0's share as
    // `held.push(...share)` threw RangeError (Maximum call stack size exceeded): a 500 for a 503.
    const wrote = { putMany: async (e: readonly KvEntry[]) => ({ written: e.length, ignored: 0, sameTime: 0 }) };
    const refuses = { putMany: async () => Promise.reject(new ShardBreakerOpenError("m1", "write", 1000)) };
    const m0 = Object.assign(new MemoryKvNode("m0"), wrote);
    const m1 = Object.assign(new MemoryKvNode("m1"), refuses);
    const store = new ShardedStore([
      { id: "m0", weight: 100, node: m0 },
      { id: "m1", weight: 1, node: m1 },
    ]);
    const row = { ts: 1, values: [1] };
    const entries: KvEntry[] = [];
    for (let i = 0; i < 1_100_000; i++) entries.push({ key: `v@1/id=i${i}`, row });
    const error = (await store.putMany(entries).catch((e: unknown) => e)) as StoreWriteError;
    expect(error).toBeInstanceOf(StoreWriteError);
    expect(error.code).toBe("shard_breaker_open");
    const onM0 = entries.filter((e) => store.nodeFor(e.key) === m0).length;
    expect(onM0).toBeGreaterThan(1_000_000);
    expect(onM0).toBeLessThan(entries.length);
    expect(error.mayHaveLanded.length).toBe(onM0);
  });
});
