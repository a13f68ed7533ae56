import { describe, expect, test } from "bun:test";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { runKvContract } from "../../test/kv-contract.ts";
import type { ChangeEvent, ChangeListener, InvalidationScope } from "./change-feed.ts";
import { LocalChangeFeed } from "./local-feed.ts";
import { ShardBreakerOpenError, ShardSaturatedError, StoreWriteError } from "../kv/storage-errors.ts";
import { PublishingKvNode } from "./publishing-node.ts";

function recorder() {
  const seen = { changes: [] as { events: readonly ChangeEvent[]; origin: string }[], invalidations: [] as InvalidationScope[], gaps: [] as string[] };
  const listener: ChangeListener = {
    onChanges: (events, origin) => seen.changes.push({ events, origin }),
    onInvalidate: (scope) => seen.invalidations.push(scope),
    onGap: (reason) => seen.gaps.push(reason),
  };
  return { seen, listener };
}

describe("LocalChangeFeed", () => {
  test("delivers published events to every subscriber at once, tagged with the origin", () => {
    const feed = new LocalChangeFeed("pod-a");
    const a = recorder();
    const b = recorder();
    feed.subscribe(a.listener);
    feed.subscribe(b.listener);
    feed.publish([{ key: "v@1/k=1", ts: 5, op: "put" }]);
    expect(a.seen.changes).toEqual([{ events: [{ key: "v@1/k=1", ts: 5, op: "put" }], origin: "pod-a" }]);
    expect(b.seen.changes).toHaveLength(1);
    expect(feed.state()).toMatchObject({ kind: "local", connected: true, published: 1, gaps: 0 });
  });

  test("a failing listener does not starve the others, and unsubscribing stops delivery", () => {
    const feed = new LocalChangeFeed("pod-a");
    const ok = recorder();
    const quiet = console.error;
    console.error = () => {};
    try {
      feed.subscribe({ onChanges: () => { throw new Error("boom"); }, onInvalidate: () => {}, onGap: () => {} });
      const off = feed.subscribe(ok.listener);
      feed.publish([{ key: "k", ts: 1, op: "put" }]);
      off();
      feed.publish([{ key: "k", ts: 2, op: "put" }]);
    } finally {
      console.error = quiet;
    }
    expect(ok.seen.changes).toHaveLength(1);
  });

  test("invalidations and gaps reach listeners", () => {
    const feed = new LocalChangeFeed("pod-a");
    const r = recorder();
    feed.subscribe(r.listener);
    feed.invalidate({ view: "driver_stats" });
    feed.deliverGap("link lost");
    expect(r.seen.invalidations).toEqual([{ view: "driver_stats" }]);
    expect(r.seen.gaps).toEqual(["link lost"]);
    expect(feed.state().gaps).toBe(1);
  });
});

describe("PublishingKvNode", () => {
  test("publishes a put only after the store acknowledged it, and deletes too", async () => {
    const feed = new LocalChangeFeed("pod-a");
    const inner = new MemoryKvNode("m");
    const node = new PublishingKvNode(inner, feed, () => 99);
    const seenAtDelivery: unknown[] = [];
    feed.subscribe({
      onChanges: (events) => seenAtDelivery.push(...events.map((e) => inner.getManyNow([e.key])[0] ?? null)),
      onInvalidate: () => {},
      onGap: () => {},
    });
    await node.putMany([{ key: "k1", row: { ts: 10, values: [1] } }]);
    expect(seenAtDelivery).toEqual([{ ts: 10, values: [1] }]);
    const r = recorder();
    feed.subscribe(r.listener);
    await node.deleteMany(["k1"]);
    expect(r.seen.changes[0]!.events).toEqual([{ key: "k1", ts: 99, op: "delete" }]);
  });

  test("a failed write is published too: the sharded store fails a write when one shard's share fails, the others' stored", async () => {
    const feed = new LocalChangeFeed("pod-a");
    const r = recorder();
    feed.subscribe(r.listener);
    const inner = new MemoryKvNode("m");
    inner.putMany = () => Promise.reject(new Error("down"));
    inner.deleteMany = () => Promise.reject(new Error("down"));
    const node = new PublishingKvNode(inner, feed, () => 99);
    await expect(node.putMany([{ key: "k1", row: { ts: 10, values: [1] } }])).rejects.toThrow("down");
    await expect(node.deleteMany(["k2"])).rejects.toThrow("down");
    expect(r.seen.changes.map((c) => c.events)).toEqual([[{ key: "k1", ts: 10, op: "put" }], [{ key: "k2", ts: 99, op: "delete" }]]);
  });

  test("a failed write publishes only what may have landed: not a share refused before anything was sent (breaker open), nothing of a write refused whole", async () => {
    const feed = new LocalChangeFeed("pod-a");
    const r = recorder();
    feed.subscribe(r.listener);
    const inner = new MemoryKvNode("m");
    const node = new PublishingKvNode(inner, feed, () => 99);
    const landed = { key: "k2", row: { ts: 10, values: [2] } };
    inner.putMany = () => Promise.reject(new StoreWriteError(new ShardBreakerOpenError("s1", "write", 3000), [landed]));
    await expect(node.putMany([{ key: "k1", row: { ts: 10, values: [1] } }, landed])).rejects.toMatchObject({ code: "shard_breaker_open" });
    inner.putMany = () => Promise.reject(new ShardBreakerOpenError("s1", "write", 3000));
    await expect(node.putMany([{ key: "k3", row: { ts: 10, values: [3] } }])).rejects.toBeInstanceOf(ShardBreakerOpenError);
    inner.putMany = () => Promise.reject(new StoreWriteError(new ShardSaturatedError("s1"), []));
    await expect(node.putMany([{ key: "k4", row: { ts: 10, values: [4] } }])).rejects.toMatchObject({ code: "shard_saturated" });
    expect(r.seen.changes.map((c) => c.events)).toEqual([[{ key: "k2", ts: 10, op: "put" }]]);
  });

  test("keeps the inner node's read capability", () => {
    expect(new PublishingKvNode(new MemoryKvNode("m"), new LocalChangeFeed("p")).readsNow).toBe("always");
  });
});

runKvContract("PublishingKvNode over MemoryKvNode", async () => {
  const node = new PublishingKvNode(new MemoryKvNode("m"), new LocalChangeFeed("pod"));
  return { node, dispose: () => node.close() };
});
