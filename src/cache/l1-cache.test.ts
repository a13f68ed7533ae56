import { describe, expect, test } from "bun:test";
import type { StoredRow } from "../kv/kv-node.ts";
import { L1Cache, type L1Entry } from "./l1-cache.ts";

function fakeClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });
/** A fresh entry's row (decoded from the bytes L1 holds), or a marker when there was no fresh entry. */
const rowOf = (e: L1Entry | undefined): StoredRow | undefined | "no entry" => (e === undefined ? "no entry" : L1Cache.rowOf(e));

function l1(clock: { now: () => number }, maxBytes = 1 << 20) {
  return new L1Cache({ maxBytes, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: clock.now });
}

/** `n` keys first filled at one instant on a fresh cache, and how many are fresh `t` ms after some later instant. */
function cohort(n = 1000) {
  const clock = fakeClock();
  const c = l1(clock, 64 << 20);
  const keys = Array.from({ length: n }, (_, i) => `v@1/k=i${i}`);
  for (const k of keys) c.fill(k, row(1, 1));
  const freshAfter = (start: number) => (t: number) => keys.filter((k) => c.fresh(k, start + t) !== undefined).length;
  return { clock, c, keys, freshAfter };
}

describe("L1Cache", () => {
  test("a fill with a TTL cap (the change feed not heard) is fresh at most that long, and never claimed for a refresh ahead", () => {
    const clock = fakeClock();
    const c = l1(clock);
    c.fill("v@1/k=i1", row(10, 1), 1_000);
    c.fill("v@1/k=i2", undefined, 1_000);
    const e = c.fresh("v@1/k=i1", clock.now());
    expect(rowOf(e)).toEqual(row(10, 1));
    expect(c.claimRefresh(e!, clock.now())).toBe(false);
    clock.advance(1_000);
    expect(c.fresh("v@1/k=i1", clock.now())).toBeUndefined();
    expect(c.fresh("v@1/k=i2", clock.now())).toBeUndefined();
    // Still a grace copy when the origin cannot answer.
    expect(c.graceRow("v@1/k=i1", clock.now())).toEqual(row(10, 1));
  });

  test("a row is fresh for its TTL, then only a grace copy until the grace window ends", () => {
    const clock = fakeClock();
    const c = l1(clock);
    c.fill("v@1/k=i1", row(10, 1));
    expect(rowOf(c.fresh("v@1/k=i1", clock.now()))).toEqual(row(10, 1));
    clock.advance(60_000);
    expect(c.fresh("v@1/k=i1", clock.now())).toBeUndefined();
    expect(c.graceRow("v@1/k=i1", clock.now())).toEqual(row(10, 1));
    clock.advance(3_600_000);
    expect(c.graceRow("v@1/k=i1", clock.now())).toBeUndefined();
  });

  test("rows filled together for the first time expire spread over the last half of their TTL, not at one instant", () => {
    const { clock, freshAfter } = cohort();
    const freshAt = freshAfter(clock.now());
    expect(freshAt(29_999)).toBe(1000); // half the TTL: all still fresh
    const quarters = [37_500, 45_000, 52_500].map(freshAt);
    // Spread evenly across 30-60 s: about three quarters, half, a quarter left.
    expect(quarters[0]).toBeGreaterThan(650);
    expect(quarters[0]).toBeLessThan(850);
    expect(quarters[1]).toBeGreaterThan(400);
    expect(quarters[1]).toBeLessThan(600);
    expect(quarters[2]).toBeGreaterThan(150);
    expect(quarters[2]).toBeLessThan(350);
    expect(freshAt(60_000)).toBe(0); // never past the TTL
  });

  test("a cohort filled at one instant comes due for refresh at most ~1/25 of it in any second (the first fill's wide jitter)", () => {
    const n = 10_000;
    const { clock, c, keys } = cohort(n);
    const perSecond = new Map<number, number>();
    for (const k of keys) {
      const second = Math.floor((c.peek(k)!.freshUntil - clock.now()) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    // Uniform over 30 s would be n/30 (333) a second; over the refresh's tenth (6 s) it was n/6 (1,667).
    expect(Math.max(...perSecond.values())).toBeLessThan(n / 25);
    expect(perSecond.size).toBeGreaterThanOrEqual(30);
  });

  test("a refresh (a fill over a fresh entry) keeps the narrow jitter: fresh for the last tenth of its TTL", () => {
    const { clock, c, keys, freshAfter } = cohort();
    clock.advance(29_000); // every first fill still fresh (it lives 30-60 s)
    for (const k of keys) c.fill(k, row(2, 2));
    const freshAt = freshAfter(clock.now());
    expect(freshAt(53_999)).toBe(1000);
    const middle = freshAt(57_000);
    expect(middle).toBeGreaterThan(400);
    expect(middle).toBeLessThan(600);
    expect(freshAt(60_000)).toBe(0);
  });

  test("a fill after the entry expired, or over a floor, spreads as a first fill does", () => {
    const { clock, c, keys, freshAfter } = cohort();
    clock.advance(60_000); // all expired: grace copies
    for (const [i, k] of keys.entries()) {
      if (i % 2 === 0) c.supersede(k, 5);
      c.fill(k, row(6, 6));
    }
    const freshAt = freshAfter(clock.now());
    expect(freshAt(29_999)).toBe(1000);
    const middle = freshAt(45_000);
    expect(middle).toBeGreaterThan(400);
    expect(middle).toBeLessThan(600);
  });

  test("a miss is cached for the negative TTL and has no grace copy", () => {
    const clock = fakeClock();
    const c = l1(clock);
    c.fill("v@1/k=i2", undefined);
    const e = c.fresh("v@1/k=i2", clock.now());
    expect(e).toBeDefined();
    expect(e?.raw).toBeUndefined();
    expect(L1Cache.rowOf(e!)).toBeUndefined();
    clock.advance(5_000);
    expect(c.fresh("v@1/k=i2", clock.now())).toBeUndefined();
    expect(c.graceRow("v@1/k=i2", clock.now())).toBeUndefined();
  });

  test("a fill never replaces a newer row; equal or newer ones refresh it", () => {
    const clock = fakeClock();
    const c = l1(clock);
    expect(c.fill("k", row(20, "new"))).toBe(true);
    expect(c.fill("k", row(10, "old"))).toBe(false);
    expect(c.fill("k", undefined)).toBe(false);
    expect(rowOf(c.fresh("k", clock.now()))).toEqual(row(20, "new"));
    expect(c.fill("k", row(30, "newer"))).toBe(true);
    expect(c.fresh("k", clock.now())?.ts).toBe(30);
  });

  test("a newer write elsewhere leaves a floor: no copy older than it is taken afterwards", () => {
    const clock = fakeClock();
    const c = l1(clock);
    c.fill("k", row(10, "a"));
    expect(c.supersede("k", 5)).toBe(false); // ours is newer
    expect(c.supersede("k", 20)).toBe(true);
    expect(c.fresh("k", clock.now())).toBeUndefined();
    expect(c.floorOf("k")).toBe(20);
    expect(c.fill("k", row(10, "a"))).toBe(false);
    expect(c.fill("k", row(20, "b"))).toBe(true);
    expect(rowOf(c.fresh("k", clock.now()))).toEqual(row(20, "b"));
    expect(c.supersede("absent", 7)).toBe(false);
    expect(c.supersede("absent", 7, true)).toBe(true);
    expect(c.floorOf("absent")).toBe(7);
  });

  test("dropView removes every version of one view and nothing else", () => {
    const clock = fakeClock();
    const c = l1(clock);
    c.fill("driver@1/k=i1", row(1, 1));
    c.fill("driver@2/k=i1", row(1, 1));
    c.fill("drivers@1/k=i1", row(1, 1));
    expect(c.dropView("driver")).toBe(2);
    expect([c.has("driver@1/k=i1"), c.has("driver@2/k=i1"), c.has("drivers@1/k=i1")]).toEqual([false, false, true]);
  });

  test("never exceeds its byte budget under churn over many distinct keys (leak test)", () => {
    const clock = fakeClock();
    const budget = 256 * 1024;
    const evicted = { n: 0 };
    const c = new L1Cache({ maxBytes: budget, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: clock.now, onEvict: () => evicted.n++ });
    const churn = (from: number, to: number): number => {
      let maxSeen = 0;
      for (let i = from; i < to; i++) {
        const key = `v@1/k=i${i}`;
        if (i % 3 === 0) c.fill(key, undefined);
        else c.fill(key, row(i, i * 0.5, `city-${i}`, [i, i + 1, i + 2]));
        if (i % 7 === 0) c.supersede(`v@1/k=i${i - 5}`, i + 1);
        if (i % 1000 === 0) maxSeen = Math.max(maxSeen, c.bytes);
      }
      return Math.max(maxSeen, c.bytes);
    };
    Bun.gc(true);
    const heapStart = process.memoryUsage().heapUsed;
    const max1 = churn(0, 100_000);
    Bun.gc(true);
    const heapMid = process.memoryUsage().heapUsed;
    const max2 = churn(100_000, 200_000);
    Bun.gc(true);
    const heapEnd = process.memoryUsage().heapUsed;
    expect(Math.max(max1, max2)).toBeLessThanOrEqual(budget);
    expect(evicted.n).toBeGreaterThan(150_000);
    console.log(
      `L1 leak test: budget ${budget} B, holds ${c.bytes} B in ${c.size} entries; heap +${heapMid - heapStart} B over the first 100k keys, +${heapEnd - heapMid} B over the next 100k`,
    );
    // Filling the budget costs a small multiple of it at most; after that, churn must not grow the heap.
    expect(heapMid - heapStart).toBeLessThan(budget * 4);
    expect(heapEnd - heapMid).toBeLessThan(budget);
  });
});
