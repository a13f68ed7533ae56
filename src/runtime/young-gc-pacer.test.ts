import { expect, test } from "bun:test";
import { loadYoungGc, type YoungGc } from "./gc.ts";
import { YoungGcPacer } from "./young-gc-pacer.ts";

const MB = 1024 * 1024;

function harness(minRequests: number, heapMb = 300, minHeapMb?: number) {
  let requests = 0;
  let clock = 0;
  let collected = 0;
  let heap = heapMb * MB;
  let heapReads = 0;
  const pauses: number[] = [];
  const gc: YoungGc = {
    collect: () => {
      collected++;
      clock += 0.8; // the pause, as the pacer measures it
    },
    heapBytes: () => {
      heapReads++;
      return heap;
    },
  };
  const pacer = new YoungGcPacer(gc, () => requests, { intervalMs: 50, minRequests, ...(minHeapMb === undefined ? {} : { minHeapBytes: minHeapMb * MB }), onCollected: (ms) => pauses.push(ms) }, () => clock);
  return {
    pacer,
    pauses,
    serve: (n: number) => {
      requests += n;
    },
    setHeapMb: (mb: number) => {
      heap = mb * MB;
    },
    advance: (ms: number) => {
      clock += ms;
    },
    heapReads: () => heapReads,
    collected: () => collected,
  };
}

const idleGc: YoungGc = { collect: () => {}, heapBytes: () => 0 };

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
  expect(h.collected()).toBe(2);
  expect(h.pauses.length).toBe(2);
  expect(h.pauses[0]).toBeCloseTo(0.8, 6);
  expect(h.pauses[1]).toBeCloseTo(0.8, 6);
});

test("a small heap is left to the runtime's own schedule, however busy", () => {
  const h = harness(256, 30);
  h.serve(10_000);
  expect(h.pacer.tick()).toBe(false);
  expect(h.collected()).toBe(0);
  // The store grows past the bound: seen once the last reading is a second old; the requests seen meanwhile still count.
  h.setHeapMb(200);
  h.advance(500);
  expect(h.pacer.tick()).toBe(false);
  h.advance(500);
  expect(h.pacer.tick()).toBe(true);
  expect(h.collected()).toBe(1);
});

test("the heap's size is read at most once a second (reading it walks the heap), and never while idle", () => {
  const h = harness(256);
  for (let i = 0; i < 5; i++) expect(h.pacer.tick()).toBe(false);
  expect(h.heapReads()).toBe(0);
  for (let tick = 0; tick < 40; tick++) {
    h.serve(1000);
    expect(h.pacer.tick()).toBe(true);
    h.advance(50);
  }
  // 40 ticks over just under 2 s (each collection's 0.8 ms pause included): two readings, at 0 and ~1 s.
  expect(h.collected()).toBe(40);
  expect(h.heapReads()).toBe(2);
});

test("requests admitted before the pacer existed do not count", () => {
  let requests = 10_000;
  let collected = 0;
  const gc: YoungGc = { collect: () => collected++, heapBytes: () => 300 * MB };
  const pacer = new YoungGcPacer(gc, () => requests, { intervalMs: 50, minRequests: 100 });
  expect(pacer.tick()).toBe(false);
  requests += 100;
  expect(pacer.tick()).toBe(true);
  expect(collected).toBe(1);
});

test("interval 0 starts no timer; bad settings are refused", () => {
  const pacer = new YoungGcPacer(idleGc, () => 0, { intervalMs: 0, minRequests: 0 }).start();
  expect((pacer as unknown as { timer: unknown }).timer).toBeUndefined();
  pacer.stop();
  expect(() => new YoungGcPacer(idleGc, () => 0, { intervalMs: -1, minRequests: 0 })).toThrow(/interval/);
  expect(() => new YoungGcPacer(idleGc, () => 0, { intervalMs: 50, minRequests: Number.NaN })).toThrow(/min requests/);
});

test("under Bun the young collection is the runtime's own, frees young garbage, and the heap size counts buffers", async () => {
  const gc = await loadYoungGc();
  expect(gc).toBeDefined();
  const refs = youngObjects(1000);
  // WeakRef targets stay alive until the job that made them ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc!.collect();
  // Freed without a full collection (a conservative stack scan may keep a stray one).
  expect(refs.filter((r) => r.deref() !== undefined).length).toBeLessThan(10);
  // Array buffers (the embedded store's slabs) count toward the heap the pacer reads.
  const held = Array.from({ length: 8 }, () => new ArrayBuffer(4 * MB));
  Bun.gc(true);
  expect(gc!.heapBytes()).toBeGreaterThanOrEqual(32 * MB);
  expect(held.length).toBe(8);
});

function youngObjects(n: number): WeakRef<object>[] {
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < n; i++) refs.push(new WeakRef({ i, s: `row-${i}` }));
  return refs;
}

test("the heap size from which collections are paced is a setting: 128 MiB by default, any heap at 0", () => {
  const small = harness(1, 30);
  small.serve(10);
  expect(small.pacer.tick()).toBe(false); // 30 MiB: the runtime's own schedule
  const anyHeap = harness(1, 30, 0);
  anyHeap.serve(10);
  expect(anyHeap.pacer.tick()).toBe(true);
  const lower = harness(1, 30, 16);
  lower.serve(10);
  expect(lower.pacer.tick()).toBe(true);
});
