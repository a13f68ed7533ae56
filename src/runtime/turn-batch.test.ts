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
    const batch = new TurnBatch<string>({ max: 16, atOnce: 1 }, loop.afterTurn);
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
    const batch = new TurnBatch<number>({ max: 3, atOnce: 1 }, loop.afterTurn);
    const out = [1, 2, 3, 4, 5, 6].map((v) => batch.hold(v));
    const released = tracked(out);
    await settle();
    // 1 at once; 2, 3, 4 made a full batch; 5 and 6 wait for the turn.
    expect(released).toEqual([1, 2, 3, 4]);
    await loop.endTurn();
    expect(released).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test("a batch whose first answer has waited the hold bound leaves with the next answer (fake clock)", async () => {
    const loop = fakeLoop();
    let now = 0;
    const batch = new TurnBatch<number>({ max: 16, atOnce: 1, maxHoldMs: 0.2 }, loop.afterTurn, () => now);
    const out: (number | Promise<number>)[] = [batch.hold(1)];
    now = 0.05;
    out.push(batch.hold(2)); // first held, at 0.05
    now = 0.2;
    out.push(batch.hold(3)); // 0.15 ms: still within the bound
    const released = tracked(out);
    await settle();
    expect(released).toEqual([1]);
    now = 0.25;
    const next = batch.hold(4); // 0.2 ms since the batch began: 2, 3 and 4 leave
    void (next as Promise<number>).then((x) => released.push(x));
    await settle();
    expect(released).toEqual([1, 2, 3, 4]);
    expect(batch.holding).toBe(0);
    // A new batch starts its own wait.
    now = 0.3;
    const fifth = batch.hold(5);
    void (fifth as Promise<number>).then((x) => released.push(x));
    await settle();
    expect(released).toEqual([1, 2, 3, 4]);
    await loop.endTurn();
    expect(released).toEqual([1, 2, 3, 4, 5]);
  });

  test("after the turn ends, the next answer is the first of a new turn: a lone request per turn is never held", async () => {
    const loop = fakeLoop();
    const batch = new TurnBatch<number>({ max: 16, atOnce: 1 }, loop.afterTurn);
    for (let i = 0; i < 5; i++) {
      expect(batch.hold(i)).toBe(i);
      await loop.endTurn();
    }
    expect(batch.holding).toBe(0);
  });

  test("on the real loop, held answers leave once the turn is over", async () => {
    const batch = new TurnBatch<number>({ max: 16, atOnce: 1 });
    const out = [1, 2, 3].map((v) => batch.hold(v));
    expect(out[0]).toBe(1);
    expect(await Promise.all(out)).toEqual([1, 2, 3]);
  });

  test("a turn's first answers, up to atOnce, leave at once: a turn of a few requests holds nothing", async () => {
    const loop = fakeLoop();
    const batch = new TurnBatch<number>({ max: 2 }, loop.afterTurn);
    for (let turn = 0; turn < 3; turn++) {
      expect([1, 2, 3, 4].map((v) => batch.hold(v))).toEqual([1, 2, 3, 4]);
      await loop.endTurn();
    }
    const out = [1, 2, 3, 4, 5, 6, 7].map((v) => batch.hold(v));
    const released = tracked(out);
    await settle();
    // Four at once, then 5 and 6 make a full batch of 2; 7 waits for the turn's end.
    expect(released).toEqual([1, 2, 3, 4, 5, 6]);
    await loop.endTurn();
    expect(released).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  test("settings out of range are refused (a batch of fewer than 2: use releaseAtOnce)", () => {
    expect(() => new TurnBatch<number>({ max: 1 })).toThrow(/max must be an integer >= 2/);
    expect(() => new TurnBatch<number>({ max: 2.5 })).toThrow(/max must be an integer >= 2/);
    expect(() => new TurnBatch<number>({ max: 4, atOnce: 0 })).toThrow(/atOnce must be an integer >= 1/);
    expect(() => new TurnBatch<number>({ max: 4, maxHoldMs: 0 })).toThrow(/maxHoldMs must be > 0/);
    expect(releaseAtOnce.hold("x")).toBe("x");
  });
});
