import { expect, test } from "bun:test";
import { runKvContract } from "../../test/kv-contract.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { KeyBatch } from "../kv/key-batch.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
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
