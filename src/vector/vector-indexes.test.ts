import { describe, expect, test } from "bun:test";
import { prng, unitVector } from "../../test/support/vectors.ts";
import type { ChangeEvent, ChangeFeed, ChangeListener, FeedState } from "../feed/index.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { type KvEntry, type KvNode, type ReadSlot, UNAVAILABLE } from "../kv/kv-node.ts";
import { MetricsRegistry } from "../ops/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { VectorIndexes } from "./vector-indexes.ts";

const registry = compileRegistry({
  entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
  featureViews: [
    { name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 32 } },
    { name: "other", entities: ["item"], features: [{ name: "x", type: "int64" }] },
  ],
});
const key = (id: number) => `items@1/item_id=i${id}`;
const row = (id: number, ts = 1) => ({ ts, values: [unitVector(8, prng(id))] });

/** A feed under the test's control: what it delivers and whether it says it is connected. */
class TestFeed implements ChangeFeed {
  readonly origin = "test";
  listener: ChangeListener | undefined;
  connected = true;
  publish(events: readonly ChangeEvent[]): void {
    this.listener?.onChanges(events, this.origin);
  }
  invalidate(): void {}
  subscribe(l: ChangeListener): () => void {
    this.listener = l;
    return () => {
      this.listener = undefined;
    };
  }
  state(): FeedState {
    return { kind: "redis", connected: this.connected, published: 0, received: 0, gaps: 0 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function setup(connected = true) {
  const store = new ArenaKvNode("t");
  await store.putMany([1, 2, 3].map((id) => ({ key: key(id), row: row(id) })));
  const feed = new TestFeed();
  feed.connected = connected;
  const vectors = new VectorIndexes({ store, feed, metrics: new MetricsRegistry(), snapshotIntervalMs: 0, embedders: { modelPath: "" } });
  await vectors.start(registry);
  return { store, feed, vectors };
}
const ids = (v: VectorIndexes) => [...v.get("items")!.labels.liveKeys()].sort();

describe("VectorIndexes", () => {
  test("builds from the store, then applies fed changes by re-reading rows; other views are ignored", async () => {
    const { store, feed, vectors } = await setup();
    expect(ids(vectors)).toEqual([key(1), key(2), key(3)]);
    await store.putMany([{ key: key(4), row: row(4) }]);
    await store.deleteMany([key(2)]);
    feed.publish([
      { key: key(4), ts: 1, op: "put" },
      { key: key(2), ts: 2, op: "delete" },
      { key: "other@1/item_id=i9", ts: 1, op: "put" },
    ]);
    await vectors.idle();
    expect(ids(vectors)).toEqual([key(1), key(3), key(4)]);
    expect(vectors.get("other")).toBeUndefined();
    await vectors.close();
  });

  test("a gap makes it catch up with the store: rows it missed appear, rows deleted meanwhile go", async () => {
    const { store, feed, vectors } = await setup();
    await store.putMany([{ key: key(5), row: row(5) }]);
    await store.deleteMany([key(1)]);
    feed.listener!.onGap("test");
    await vectors.idle();
    expect(ids(vectors)).toEqual([key(2), key(3), key(5)]);
    await vectors.close();
  });

  test("an invalidation of the view catches up too", async () => {
    const { store, feed, vectors } = await setup();
    await store.putMany([{ key: key(6), row: row(6) }]);
    feed.listener!.onInvalidate({ view: "items" }, "elsewhere");
    await vectors.idle();
    expect(ids(vectors)).toContain(key(6));
    await vectors.close();
  });

  test("built before the shared feed was connected: catches up once it connects", async () => {
    const { store, feed, vectors } = await setup(false);
    // Written by another pod while this one was not subscribed yet: no event will ever come.
    await store.putMany([{ key: key(7), row: row(7) }]);
    feed.connected = true;
    for (let i = 0; i < 100 && !ids(vectors).includes(key(7)); i++) {
      await Bun.sleep(20);
      await vectors.idle();
    }
    expect(ids(vectors)).toContain(key(7));
    await vectors.close();
  });

  test("a change whose row storage cannot read right now is kept and applied once it can", async () => {
    const inner = new ArenaKvNode("t");
    let down = false;
    // The shape of a composite whose shard is out: UNAVAILABLE slots, not a rejection.
    const store: KvNode = {
      id: "flaky",
      readsNow: "never",
      rawNow: undefined,
      getManyNow: () => undefined,
      getMany: async (keys): Promise<ReadSlot[]> => (down ? keys.map(() => UNAVAILABLE) : inner.getMany(keys)),
      putMany: (entries: readonly KvEntry[]) => inner.putMany(entries),
      deleteMany: (keys) => inner.deleteMany(keys),
      scan: (cursor, count, prefix) => inner.scan(cursor, count, prefix),
      health: () => inner.health(),
      close: () => inner.close(),
    };
    const feed = new TestFeed();
    const vectors = new VectorIndexes({ store, feed, metrics: new MetricsRegistry(), snapshotIntervalMs: 0, embedders: { modelPath: "" } });
    await vectors.start(registry);
    await inner.putMany([{ key: key(8), row: row(8) }]);
    down = true;
    feed.publish([{ key: key(8), ts: 1, op: "put" }]);
    await Bun.sleep(50);
    expect(ids(vectors)).toEqual([]);
    down = false;
    await vectors.idle();
    expect(ids(vectors)).toEqual([key(8)]);
    await vectors.close();
  });
});
