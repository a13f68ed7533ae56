import { expect, test } from "bun:test";
import { compositeShape } from "../../test/support/composite-shape.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { ScanRestartError } from "../kv/storage-errors.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { sampleEntities } from "./warmup-entities.ts";

const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "x", type: "int64" }] }],
});
const view = registry.views.get("stats")!;

test("warm-up stops sampling at a scan whose shard's primary became another process, and warms on what it found", async () => {
  const inner = new ArenaKvNode("n0");
  await inner.putMany([1, 2, 3].map((i) => ({ key: `${view.keyPrefix}driver_id=i${i}`, row: { ts: 1, values: [i] } })));
  let calls = 0;
  const store = compositeShape(inner, {
    scan: async () => {
      calls++;
      if (calls === 1) return { cursor: "9@aaaa", keys: [`${view.keyPrefix}driver_id=i1`, `${view.keyPrefix}driver_id=i2`] };
      throw new ScanRestartError("127.0.0.1:6379", "aaaa", "bbbb");
    },
  });
  // Best effort: the two entities of the first page, once each; not thrown, not started again.
  const found = await sampleEntities(store, view, 10, performance.now() + 5_000);
  expect(found.map((e) => e.get("driver_id"))).toEqual([1, 2]);
  expect(calls).toBe(2);
});
