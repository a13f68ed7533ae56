import { describe, expect, test } from "bun:test";
import { loopHeld, startLoopTicks } from "./loop-ticks.ts";

describe("loop ticks", () => {
  test("loopHeld takes the longest interval overlapping the window, less the tick's 1 ms", () => {
    const ticks = [
      { from: 0, to: 1 },
      { from: 1, to: 12 }, // held 10 ms, before the window
      { from: 12, to: 13 },
      { from: 13, to: 17 }, // held 3 ms, overlaps the window's start
      { from: 17, to: 18 },
      { from: 18, to: 40 }, // held 21 ms, after the window
    ];
    expect(loopHeld(ticks, 15, 18)).toBe(3);
    expect(loopHeld(ticks, 0, 13)).toBe(10);
    expect(loopHeld(ticks, 0, 100)).toBe(21);
    expect(loopHeld(ticks, 50, 60)).toBe(0);
  });

  test("a loop held by a busy task shows at least that long (no upper bound: the host may add to it)", async () => {
    const ticks = startLoopTicks();
    await Bun.sleep(5);
    const from = performance.now();
    while (performance.now() - from < 30) {
      // hold the loop 30 ms
    }
    const to = performance.now();
    await Bun.sleep(5);
    const held = loopHeld(ticks.stop(), from, to);
    expect(held).toBeGreaterThanOrEqual(28);
  });
});
