import { afterAll, afterEach, describe, expect, spyOn, test } from "bun:test";
import { StorageAbortedError, StorageTimeoutError, withDeadline } from "./storage-errors.ts";

/** A call that never answers, as a hung Redis command. */
const never = () => new Promise<never>(() => {});

describe("withDeadline", () => {
  const clears = spyOn(globalThis, "clearTimeout");
  afterEach(() => clears.mockClear());
  afterAll(() => clears.mockRestore());

  test("an abort ends the wait at once and clears its timer (nothing is left to fire later)", async () => {
    const ac = new AbortController();
    const sets = spyOn(globalThis, "setTimeout");
    const waiting = withDeadline(never(), 60_000, "redis GET", ac.signal);
    const timer: unknown = sets.mock.results.at(-1)?.value;
    sets.mockRestore();
    ac.abort();
    await expect(waiting).rejects.toBeInstanceOf(StorageAbortedError);
    expect(timer).toBeDefined();
    expect(clears.mock.calls.map((c): unknown => c[0])).toContain(timer);
  });

  test("an answer in time clears the timer and stops listening to the signal", async () => {
    const ac = new AbortController();
    const removed = spyOn(ac.signal, "removeEventListener");
    await expect(withDeadline(Promise.resolve(7), 60_000, "redis GET", ac.signal)).resolves.toBe(7);
    expect(clears).toHaveBeenCalledTimes(1);
    expect(removed).toHaveBeenCalledTimes(1);
    // A later abort changes nothing.
    ac.abort();
  });

  test("a failure in time is passed on as it is, listener removed", async () => {
    const ac = new AbortController();
    const removed = spyOn(ac.signal, "removeEventListener");
    const boom = new Error("connection reset");
    await expect(withDeadline(Promise.reject(boom), 60_000, "redis GET", ac.signal)).rejects.toBe(boom);
    expect(removed).toHaveBeenCalledTimes(1);
  });

  test("the timer ends a call that does not answer, and stops listening to the signal", async () => {
    const ac = new AbortController();
    const removed = spyOn(ac.signal, "removeEventListener");
    const e = await withDeadline(never(), 5, "redis GET", ac.signal).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageTimeoutError);
    expect((e as StorageTimeoutError).budgetMs).toBe(5);
    expect(removed).toHaveBeenCalledTimes(1);
  });

  test("a signal aborted before the call, or no budget left, refuses at once without a timer", async () => {
    const sets = spyOn(globalThis, "setTimeout");
    try {
      const ac = new AbortController();
      ac.abort();
      await expect(withDeadline(never(), 1000, "redis GET", ac.signal)).rejects.toBeInstanceOf(StorageAbortedError);
      await expect(withDeadline(never(), 0, "redis GET")).rejects.toBeInstanceOf(StorageTimeoutError);
      expect(sets).not.toHaveBeenCalled();
    } finally {
      sets.mockRestore();
    }
  });
});
