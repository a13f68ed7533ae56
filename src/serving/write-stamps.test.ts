import { describe, expect, test } from "bun:test";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { PushService } from "./push-service.ts";
import { entityKeys, RowEntities } from "./entity-input.ts";
import { WriteStamps } from "./write-stamps.ts";

describe("WriteStamps", () => {
  test("a key stamped twice in one millisecond gets a later stamp; other keys keep the clock", () => {
    const stamps = new WriteStamps();
    expect(stamps.stamp("a", 1_000)).toBe(1_000);
    expect(stamps.stamp("a", 1_000)).toBe(1_001);
    expect(stamps.stamp("b", 1_000)).toBe(1_000);
    expect(stamps.stamp("a", 1_000)).toBe(1_002);
    // The clock catching up: the stamp follows the clock again once it is past the key's last.
    expect(stamps.stamp("a", 1_002)).toBe(1_003);
    expect(stamps.stamp("a", 1_010)).toBe(1_010);
  });

  test("a stamp runs at most maxLeadMs ahead of the clock", () => {
    const stamps = new WriteStamps(3);
    const got = Array.from({ length: 6 }, () => stamps.stamp("hot", 500));
    expect(got).toEqual([500, 501, 502, 503, 503, 503]);
  });

  test("an event time a client gave is stamped past", () => {
    const stamps = new WriteStamps();
    stamps.observe("a", 2_000, 2_000);
    expect(stamps.stamp("a", 2_000)).toBe(2_001);
    stamps.observe("b", 1_999, 2_000); // in the past: a stamp of the clock is already newer
    expect(stamps.stamp("b", 2_000)).toBe(2_000);
  });

  test("remembers only stamps not yet in the past", () => {
    const stamps = new WriteStamps();
    for (let i = 0; i < 1_000; i++) stamps.stamp(`k${i}`, 7_000);
    expect(stamps.size).toBe(1_000);
    stamps.stamp("k0", 7_001);
    expect(stamps.size).toBe(1);
    // A hot key held ahead of the clock keeps the rest from being cleared at once; the sweep bounds them.
    const hot = new WriteStamps(1_000_000);
    let now = 10_000;
    for (let i = 0; i < 400_000; i++) {
      if (i % 4 === 0) now++;
      hot.stamp("hot", now);
      hot.stamp("hot", now);
      hot.stamp(`k${i}`, now);
    }
    expect(hot.size).toBeLessThan(140_000);
  });
});

const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64" }] }],
});
const view = registry.views.get("stats")!;
const columns = [
  { name: "driver_id", path: "rows[].driver_id" },
  { name: "rate", path: "rows[].rate" },
];

async function rateOf(store: MemoryKvNode, id: number): Promise<unknown> {
  const [key] = entityKeys(new RowEntities([{ driver_id: id }], "rows"), view.joinKeys);
  const [slot] = await store.getMany([view.keyPrefix + key]);
  if (slot === undefined || typeof slot === "symbol") throw new Error(`no row for ${id}`);
  return slot.values[0];
}

describe("PushService stamps rows pushed without an event time", () => {
  test("a correction pushed in the same millisecond takes effect (it was ignored as a tie)", async () => {
    const store = new MemoryKvNode("m");
    const push = new PushService(store, { maxFutureSkewMs: 3_600_000 }, () => 5_000);
    for (let i = 1; i <= 50; i++) {
      const outcome = await push.write(push.prepare(view, new RowEntities([{ driver_id: 1, rate: i }], "rows"), columns));
      expect(outcome).toMatchObject({ written: 1, ignored: 0 });
    }
    expect(await rateOf(store, 1)).toBe(50);
  });

  test("within one push the last row of a key wins", async () => {
    const store = new MemoryKvNode("m");
    const push = new PushService(store, { maxFutureSkewMs: 3_600_000 }, () => 5_000);
    const rows = [{ driver_id: 1, rate: 1 }, { driver_id: 2, rate: 7 }, { driver_id: 1, rate: 2 }, { driver_id: 1, rate: 3 }];
    await push.write(push.prepare(view, new RowEntities(rows, "rows"), columns));
    expect(await rateOf(store, 1)).toBe(3);
    expect(await rateOf(store, 2)).toBe(7);
    // Again in the same millisecond: the new push wins over the last.
    await push.write(push.prepare(view, new RowEntities([{ driver_id: 1, rate: 4 }, { driver_id: 1, rate: 5 }], "rows"), columns));
    expect(await rateOf(store, 1)).toBe(5);
  });

  test("explicit event times keep last-write-wins: an equal one is a replay, ignored", async () => {
    const store = new MemoryKvNode("m");
    const push = new PushService(store, { maxFutureSkewMs: 3_600_000 }, () => 5_000);
    const cols = [...columns, { name: "event_timestamp", path: "rows[].event_timestamp" }];
    await push.write(push.prepare(view, new RowEntities([{ driver_id: 1, rate: 1, event_timestamp: 5_000 }], "rows"), cols));
    expect(await push.write(push.prepare(view, new RowEntities([{ driver_id: 1, rate: 2, event_timestamp: 5_000 }], "rows"), cols))).toMatchObject({ written: 0, ignored: 1 });
    expect(await rateOf(store, 1)).toBe(1);
    // A push without an event time after a client's "now": stamped past it.
    expect(await push.write(push.prepare(view, new RowEntities([{ driver_id: 1, rate: 3 }], "rows"), columns))).toMatchObject({ written: 1 });
    expect(await rateOf(store, 1)).toBe(3);
  });
});
