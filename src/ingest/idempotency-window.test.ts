import { expect, test } from "bun:test";
import { IdempotencyWindow } from "./idempotency-window.ts";

test("keys are remembered per view for at least half the window, then forgotten (fake clock)", () => {
  let now = 0;
  const w = new IdempotencyWindow(10_000, 1_000_000, () => now);
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
  const w = new IdempotencyWindow(3_600_000, 1000, () => 0);
  for (let i = 0; i < 100_000; i++) w.remember("v", `k${i}`);
  expect(w.size).toBeLessThanOrEqual(1000);
  expect(w.has("v", "k99999")).toBe(true);
});
