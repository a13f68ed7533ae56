import { expect, test } from "bun:test";
import { IdempotencyWindow, keyBytes } from "./idempotency-window.ts";

test("keys are remembered per view for at least half the window, then forgotten (fake clock)", () => {
  let now = 0;
  const w = new IdempotencyWindow(10_000, {}, () => now);
  w.remember("v", "a");
  expect(w.has("v", "a")).toBe(true);
  expect(w.has("other", "a")).toBe(false);
  now = 5_000; // half the window: a new generation starts, "a" is still in the previous one
  w.remember("v", "b");
  expect(w.has("v", "a")).toBe(true);
  now = 10_000; // another half: the generation holding "a" is dropped
  w.remember("v", "c");
  expect(w.has("v", "a")).toBe(false);
  expect(w.has("v", "b")).toBe(true);
  expect(w.has("v", "c")).toBe(true);
});

test("memory stays bounded by maxKeys whatever the rate", () => {
  const w = new IdempotencyWindow(3_600_000, { maxKeys: 1000 }, () => 0);
  for (let i = 0; i < 100_000; i++) w.remember("v", `k${i}`);
  expect(w.size).toBeLessThanOrEqual(1000);
  expect(w.has("v", "k99999")).toBe(true);
});

test("long keys are bounded by bytes, not only by count: 256-character keys stop at the byte budget", () => {
  const maxBytes = 1 << 20;
  const cut: string[] = [];
  const w = new IdempotencyWindow(3_600_000, { maxKeys: 1_000_000, maxBytes }, () => 0, (view) => cut.push(view));
  const key = (i: number) => `${i}:${"k".repeat(250)}`.slice(0, 256);
  for (let i = 0; i < 100_000; i++) w.remember("v", key(i));
  const [stats] = w.stats();
  // Each generation turns over once it holds half the budget: never more than the budget, plus the one key that crossed it.
  expect(stats!.bytes).toBeLessThanOrEqual(maxBytes + keyBytes(key(0)));
  expect(stats!.keys).toBeLessThan(maxBytes / 256);
  expect(w.has("v", key(99_999))).toBe(true);
  expect(w.has("v", key(0))).toBe(false);
  // Every turnover came from the cap, none from age: each is reported.
  expect(cut.length).toBeGreaterThan(10);
  expect(new Set(cut)).toEqual(new Set(["v"]));
});

test("a turnover by age is not reported as cut short; one by a cap is, and the span shows how far back the window remembers", () => {
  let now = 0;
  const cut: string[] = [];
  const w = new IdempotencyWindow(10_000, { maxKeys: 4 }, () => now, (view) => cut.push(view));
  w.remember("v", "a");
  now = 5_000;
  w.remember("v", "b"); // aged: a new generation, nothing cut short
  expect(cut).toEqual([]);
  now = 6_000;
  expect(w.stats()).toEqual([{ view: "v", keys: 2, bytes: keyBytes("a") + keyBytes("b"), spanMs: 6_000 }]);
  w.remember("v", "c"); // the current generation now holds 2 = half of maxKeys
  now = 7_000;
  w.remember("v", "d"); // turned over by the cap after 2 s, not 5: reported
  expect(cut).toEqual(["v"]);
  expect(w.has("v", "a")).toBe(false);
  expect(w.has("v", "b")).toBe(true);
  // Remembered back to when the generation holding b and c began (5 s), i.e. 2 s: less than the 5 s the window promises.
  expect(w.stats()[0]!.spanMs).toBe(2_000);
});

test("remembering a key the current generation holds counts it once", () => {
  const w = new IdempotencyWindow(10_000, {}, () => 0);
  for (let i = 0; i < 10; i++) w.remember("v", "same");
  expect(w.stats()).toEqual([{ view: "v", keys: 1, bytes: keyBytes("same"), spanMs: 0 }]);
});
