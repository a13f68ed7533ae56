import { describe, expect, test } from "bun:test";
import { TIMELINE_BOUNDS_MS, TIMELINE_WINDOW_MS, Timeline, tailConcentration } from "../loadtest/engine/timeline.ts";

describe("latency timeline", () => {
  test("counts requests, the slowest and those over each bound per window, leaving out the lead windows", () => {
    const t = new Timeline(2);
    t.record(50, 9); // lead window 0: not reported
    t.record(150, 0.5); // lead window 1: not reported
    t.record(200, 0.5); // reported window 0
    t.record(250, 3);
    t.record(299.9, 60);
    t.record(510, 1.5); // reported window 3; windows 1 and 2 stay empty
    const s = t.summary();
    expect(s.windowMs).toBe(TIMELINE_WINDOW_MS);
    expect(s.count).toEqual([3, 0, 0, 1]);
    expect(s.maxMs).toEqual([60, 0, 0, 1.5]);
    const over = Object.fromEntries(s.over.map((o) => [o.boundMs, o.count]));
    expect(s.over.map((o) => o.boundMs)).toEqual([...TIMELINE_BOUNDS_MS]);
    expect(over[1]).toEqual([2, 0, 0, 1]);
    expect(over[2]).toEqual([2, 0, 0, 0]);
    expect(over[5]).toEqual([1, 0, 0, 0]);
    expect(over[50]).toEqual([1, 0, 0, 0]);
  });

  test("grows past its first windows and keeps what it held", () => {
    const t = new Timeline();
    for (let w = 0; w < 1000; w++) t.record(w * TIMELINE_WINDOW_MS + 1, w % 100 === 0 ? 25 : 0.1);
    const s = t.summary();
    expect(s.count.length).toBe(1000);
    expect(s.count.every((c) => c === 1)).toBe(true);
    const over20 = s.over.find((o) => o.boundMs === 20)!.count;
    expect(over20.reduce((a, b) => a + b, 0)).toBe(10);
    expect(over20[900]).toBe(1);
  });

  test("tail concentration: at the largest bound the p99 reaches, how few windows hold the slow requests", () => {
    const t = new Timeline();
    // 20 windows of 100 requests; a stall in windows 7 and 8 makes 150 requests slow (30-40 ms), and 20 more are spread.
    for (let w = 0; w < 20; w++) {
      for (let i = 0; i < 100; i++) {
        const stalled = (w === 7 && i >= 25) || (w === 8 && i < 75);
        const spread = !stalled && i === 50;
        t.record(w * 100 + i, stalled ? 30 + (i % 10) : spread ? 12 : 0.2);
      }
    }
    const c = tailConcentration(t.summary(), 25)!;
    expect(c.boundMs).toBe(20);
    expect(c.slow).toBe(150);
    expect(c.windows).toBe(20);
    expect(c.windowsWithSlow).toBe(2);
    expect(c.windowsForHalf).toBe(1);
    expect(c.worst).toEqual({ atMs: 700, slow: 75, maxMs: 39 });
    // At a p99 of 12 ms the bound is 10 ms: the spread requests count too, in every window.
    const low = tailConcentration(t.summary(), 12)!;
    expect(low.boundMs).toBe(10);
    expect(low.slow).toBe(168);
    expect(low.windowsWithSlow).toBe(20);
    // Below the smallest bound, or nothing over it: nothing to say.
    expect(tailConcentration(t.summary(), 0.5)).toBeUndefined();
    expect(tailConcentration(new Timeline().summary(), 30)).toBeUndefined();
  });
});
