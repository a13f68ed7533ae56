import { describe, expect, test } from "bun:test";
import { releaseAtOnce, TurnBatch } from "./turn-batch.ts";

/** A loop whose turns end when the test says so. */
function fakeLoop() {
  let pending: (() => void)[] = [];
  return {
    afterTurn: (fn: () => void) => {
      pending.push(fn);
    },
    /** Ends the turn: runs what waited for it, then lets promise reactions run. */
    async endTurn() {
      const run = pending;
      pending = [];
      for (const fn of run) fn();
      await Promise.resolve();
      await Promise.resolve();
    },
  };
}

/** Which of `values` have been released so far (their promises settled). */
function tracked<T>(values: (T | Promise<T>)[]) {
  const released: T[] = [];
  for (const v of values) {
    if (v instanceof Promise) void v.then((x) => released.push(x));
    else released.push(v);
  }
  return released;
}

const settle = async () => {
  for (let i = 0; i < 4; i++) await Promise.resolve();
};

describe("TurnBatch", () => {
  test("the first answer of a turn leaves at once; the ones after it wait for the turn's end, each with its own value, in order", async () => {
    const loop = fakeLoop();
    const batch = new TurnBatch<string>(16, loop.afterTurn);
    const out = ["a", "b", "c", "d"].map((v) => batch.hold(v));
    expect(out[0]).toBe("a");
    const released = tracked(out);
    await settle();
    expect(released).toEqual(["a"]);
    expect(batch.holding).toBe(3);
    await loop.endTurn();
    expect(released).toEqual(["a", "b", "c", "d"]);
    expect(batch.holding).toBe(0);
  });

  test("a full batch leaves without waiting for the turn's end", async () => {
    const loop = fakeLoop();
    const batch = new TurnBatch<number>(3, loop.afterTurn);
    const out = [1, 2, 3, 4, 5, 6].map((v) => batch.hold(v));
    const released = tracked(out);
    await settle();
    // 1 at once; 2, 3, 4 made a full batch; 5 and 6 wait for the turn.
    expect(released).toEqual([1, 2, 3, 4]);
    await loop.endTurn();
    expect(released).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test("after the turn ends, the next answer is the first of a new turn: a lone request per turn is never held", async () => {
    const loop = fakeLoop();
    const batch = new TurnBatch<number>(16, loop.afterTurn);
    for (let i = 0; i < 5; i++) {
      expect(batch.hold(i)).toBe(i);
      await loop.endTurn();
    }
    expect(batch.holding).toBe(0);
  });

  test("on the real loop, held answers leave once the turn is over", async () => {
    const batch = new TurnBatch<number>(16);
    const out = [1, 2, 3].map((v) => batch.hold(v));
    expect(out[0]).toBe(1);
    expect(await Promise.all(out)).toEqual([1, 2, 3]);
  });

  test("a batch of fewer than 2 is refused (use releaseAtOnce)", () => {
    expect(() => new TurnBatch<number>(1)).toThrow(/max must be an integer >= 2/);
    expect(() => new TurnBatch<number>(2.5)).toThrow(/max must be an integer >= 2/);
    expect(releaseAtOnce.hold("x")).toBe("x");
  });
});
