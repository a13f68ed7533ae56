import { expect, test } from "bun:test";
import { ringKeyStart } from "../kv/keys.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { ScanRestartError } from "../kv/storage-errors.ts";
import { ShardedStore } from "../store/sharded-store.ts";
import { compositeShape } from "../../test/support/composite-shape.ts";
import { storeIsEmpty } from "./demo-data.ts";

const quiet = () => {};

test("a ring whose data sits only on a node after the first is not empty (its first page of the scan is)", async () => {
  const nodes = [new ArenaKvNode("n0"), new ArenaKvNode("n1"), new ArenaKvNode("n2")];
  const store = new ShardedStore(nodes.map((node) => ({ id: node.id, weight: 1, node })));
  expect(await storeIsEmpty(store, quiet)).toBe(true);
  // A key the ring gives to a node other than the first: the old check (`scan("0", 1)` finds no key) called the store empty.
  let key = "";
  for (let i = 0; key === ""; i++) {
    const k = `driver_hourly_stats@1/driver_id=i${i}`;
    if (store.ring.ownerIndexOf(k, ringKeyStart(k)) !== 0) key = k;
  }
  await store.putMany([{ key, row: { ts: 1, values: [1] } }]);
  expect((await store.scan("0", 1)).keys).toEqual([]);
  expect(await storeIsEmpty(store, quiet)).toBe(false);
});

test("a store that cannot be scanned is not called empty, and says why", async () => {
  const store = compositeShape(new ArenaKvNode("down"), {
    scan: async () => {
      throw new Error("s1: scan failed on the primary");
    },
  });
  const lines: string[] = [];
  expect(await storeIsEmpty(store, (l) => lines.push(l))).toBe(false);
  expect(lines).toEqual(["quiver: could not tell whether the store is empty (s1: scan failed on the primary); demo data not loaded"]);
});

test("a scan whose shard's primary became another process is started again, not taken for an empty store (nor for a store it cannot read)", async () => {
  const inner = new ArenaKvNode("n0");
  await inner.putMany([{ key: "driver_hourly_stats@1/driver_id=i1", row: { ts: 1, values: [1] } }]);
  let calls = 0;
  // The first pass: an empty first page, then the process changed. The second pass reads the store as it is.
  const store = compositeShape(inner, {
    scan: async (cursor, count, prefix) => {
      calls++;
      if (calls === 1) return { cursor: "7@aaaa", keys: [] };
      if (calls === 2) throw new ScanRestartError("127.0.0.1:6379", "aaaa", "bbbb");
      return inner.scan(cursor, count, prefix);
    },
  });
  const lines: string[] = [];
  expect(await storeIsEmpty(store, (l) => lines.push(l))).toBe(false);
  expect(calls).toBe(3);
  expect(lines.length).toBe(1);
  expect(lines[0]).toStartWith("quiver: demo data: scanning the store again from the start (restart 1)");
});
