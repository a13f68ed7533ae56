import { expect, test } from "bun:test";
import { retryPatiently } from "./patient-retry.ts";

test("tries again after each failure until one succeeds, reporting each wait", async () => {
  let calls = 0;
  const waits: number[] = [];
  const out = await retryPatiently(
    async () => {
      calls++;
      if (calls < 4) throw new Error(`fail ${calls}`);
      return "ok";
    },
    { retries: 10, initialDelayMs: 1, maxDelayMs: 4, onRetry: (_e, ms) => waits.push(ms) },
  );
  expect(out).toBe("ok");
  expect(calls).toBe(4);
  expect(waits).toHaveLength(3);
  // Ceilings 1, 2, 4 ms (doubling, capped at 4); each wait between three quarters and all of its ceiling.
  [1, 2, 4].forEach((ceiling, i) => {
    expect(waits[i]!).toBeGreaterThanOrEqual(0.75 * ceiling);
    expect(waits[i]!).toBeLessThanOrEqual(ceiling);
  });
});

test("throws the last failure once the retries are spent", async () => {
  let calls = 0;
  const run = retryPatiently(
    async () => {
      calls++;
      throw new Error(`fail ${calls}`);
    },
    { retries: 2, initialDelayMs: 1, maxDelayMs: 1 },
  );
  await expect(run).rejects.toThrow("fail 3");
  expect(calls).toBe(3);
});

test("an abort ends a long wait at once and throws the failure before it; no try follows", async () => {
  const stop = new AbortController();
  let calls = 0;
  const run = retryPatiently(
    async () => {
      calls++;
      throw new Error("shard down");
    },
    // A wait of a minute: only the abort can end this test within its timeout.
    { retries: Number.POSITIVE_INFINITY, initialDelayMs: 60_000, maxDelayMs: 60_000, signal: stop.signal, onRetry: () => stop.abort() },
  );
  await expect(run).rejects.toThrow("shard down");
  expect(calls).toBe(1);
});

test("an aborted signal stops before the first wait", async () => {
  const stop = new AbortController();
  stop.abort();
  let calls = 0;
  await expect(
    retryPatiently(
      async () => {
        calls++;
        throw new Error("x");
      },
      { retries: 5, initialDelayMs: 60_000, maxDelayMs: 60_000, signal: stop.signal },
    ),
  ).rejects.toThrow("x");
  expect(calls).toBe(1);
});
