import { expect, test } from "bun:test";
import { loadYoungCollector } from "./gc.ts";
import { YoungGcPacer } from "./young-gc-pacer.ts";

function harness(minRequests: number) {
  let requests = 0;
  let clock = 0;
  let collected = 0;
  const pauses: number[] = [];
  const pacer = new YoungGcPacer(
    () => {
      collected++;
      clock += 0.8; // the pause, as the pacer measures it
    },
    () => requests,
    { intervalMs: 50, minRequests, onCollected: (ms) => pauses.push(ms) },
    () => clock,
  );
  return {
    pacer,
    pauses,
    serve: (n: number) => {
      requests += n;
    },
    collected: () => collected,
  };
}

test("a tick collects only after enough requests since the last collection, and times the pause", () => {
  const h = harness(256);
  expect(h.pacer.tick()).toBe(false); // idle: nothing to collect
  h.serve(255);
  expect(h.pacer.tick()).toBe(false);
  h.serve(1);
  expect(h.pacer.tick()).toBe(true);
  expect(h.collected()).toBe(1);
  // The count starts again from the collection.
  h.serve(200);
  expect(h.pacer.tick()).toBe(false);
  h.serve(5000);
  expect(h.pacer.tick()).toBe(true);
  expect(h.pacer.tick()).toBe(false);
  expect(h.pacer.collections).toBe(2);
  expect(h.pacer.pauseMs).toBeCloseTo(1.6, 6);
  expect(h.pauses.length).toBe(2);
  expect(h.pauses[1]).toBeCloseTo(0.8, 6);
});

test("requests admitted before the pacer existed do not count", () => {
  let requests = 10_000;
  let collected = 0;
  const pacer = new YoungGcPacer(
    () => collected++,
    () => requests,
    { intervalMs: 50, minRequests: 100 },
  );
  expect(pacer.tick()).toBe(false);
  requests += 100;
  expect(pacer.tick()).toBe(true);
  expect(collected).toBe(1);
});

test("interval 0 starts no timer; bad settings are refused", () => {
  const pacer = new YoungGcPacer(() => {}, () => 0, { intervalMs: 0, minRequests: 0 }).start();
  expect((pacer as unknown as { timer: unknown }).timer).toBeUndefined();
  pacer.stop();
  expect(() => new YoungGcPacer(() => {}, () => 0, { intervalMs: -1, minRequests: 0 })).toThrow(/interval/);
  expect(() => new YoungGcPacer(() => {}, () => 0, { intervalMs: 50, minRequests: Number.NaN })).toThrow(/min requests/);
});

test("under Bun the young collection is the runtime's own, and frees young garbage", async () => {
  const collect = await loadYoungCollector();
  expect(collect).toBeDefined();
  const refs = youngObjects(1000);
  // WeakRef targets stay alive until the job that made them ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  collect!();
  // Freed without a full collection (a conservative stack scan may keep a stray one).
  expect(refs.filter((r) => r.deref() !== undefined).length).toBeLessThan(10);
});

function youngObjects(n: number): WeakRef<object>[] {
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < n; i++) refs.push(new WeakRef({ i, s: `row-${i}` }));
  return refs;
}
