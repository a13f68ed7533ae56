import { describe, expect, test } from "bun:test";
import { OwnStalls } from "../loadtest/engine/own-stalls.ts";
import { Recorder } from "../loadtest/engine/recorder.ts";
import type { LoadOutcome } from "../loadtest/engine/run-load.ts";
import { buildResult } from "../loadtest/output/result.ts";
import { formatSummary } from "../loadtest/output/table.ts";

describe("the generator's own stalls", () => {
  test("a tick later than the period plus the threshold marks the span since the last tick", () => {
    const s = new OwnStalls(2, 5);
    for (let t = 0; t <= 100; t += 2) s.tick(t);
    // On time, or up to the threshold late: no stall.
    s.tick(106);
    expect(s.summary(0).count).toBe(0);
    // 40 ms without a tick: one stall, from the last tick to this one.
    s.tick(146);
    expect(s.summary(0)).toEqual({ everyMs: 2, thresholdMs: 5, count: 1, maxMs: 40, totalMs: 40, complete: true });
    expect(s.overlaps(100, 105)).toBe(false);
    expect(s.overlaps(100, 107)).toBe(true);
    expect(s.overlaps(110, 120)).toBe(true);
    expect(s.overlaps(90, 106)).toBe(true);
    expect(s.overlaps(146.5, 200)).toBe(false);
  });

  test("an answer that arrives first records the stall, and the tick after it does not record it again", () => {
    const s = new OwnStalls(2, 5);
    s.tick(0);
    s.observe(30);
    expect(s.overlaps(10, 30)).toBe(true);
    s.tick(30.5);
    s.tick(32.5);
    expect(s.summary(0).count).toBe(1);
    expect(s.summary(0).maxMs).toBe(30);
  });

  test("the summary counts only stalls that ended since its start, and says when the ring lost some", () => {
    const s = new OwnStalls(2, 5, 4);
    let t = 0;
    s.tick(t);
    for (let i = 0; i < 6; i++) {
      t += 20;
      s.tick(t);
      t += 2;
      s.tick(t);
    }
    // Stalls ended at 20, 42, 64, 86, 108, 130; the ring keeps the last 4.
    expect(s.summary(100)).toEqual({ everyMs: 2, thresholdMs: 5, count: 2, maxMs: 20, totalMs: 40, complete: true });
    // All 4 kept ended since 60; whether the dropped ones did, the ring cannot tell.
    expect(s.summary(60)).toEqual({ everyMs: 2, thresholdMs: 5, count: 4, maxMs: 20, totalMs: 80, complete: false });
    expect(s.summary(0).complete).toBe(false);
    // Overlap looks back through every kept stall, newest first.
    expect(s.overlaps(45, 46)).toBe(true);
    expect(s.overlaps(64.5, 65.5)).toBe(false);
  });

  test("settings must be positive", () => {
    expect(() => new OwnStalls(0, 5)).toThrow(/positive/);
    expect(() => new OwnStalls(2, -1)).toThrow(/positive/);
  });

  test("answers that waited through a stall are counted apart and left out of the latency without stalls", () => {
    const rec = new Recorder(["lookup"]);
    for (let i = 1; i <= 100; i++) rec.response(0, 200, i / 100, i / 200, 0);
    rec.response(0, 200, 40, 1, 39, 0, 0, true);
    rec.response(0, 200, 30, 1, 29, 0, 0, true);
    rec.response(0, 503, 0.2, 0.1, 0);
    const ownStalls = { everyMs: 2, thresholdMs: 5, count: 1, maxMs: 38.2, totalMs: 38.2, complete: true };
    const outcome: LoadOutcome = { recorder: rec, sent: 103, unsent: 0, measuredMs: 1000, achievedRate: 103, cpu: { userMs: 1, systemMs: 1, utilization: 0.01 }, connectFailures: 0, gcPace: undefined, ownStalls };
    const r = buildResult({ label: "x", scenario: "lookup", mode: "open", target: "http://127.0.0.1:1", startedAt: new Date(0), targetRate: 100, options: {} }, outcome);
    expect(r.latencyByStatusMs["200"]!.count).toBe(102);
    expect(r.latencyByStatusMs["200"]!.max).toBeCloseTo(40, 1);
    expect(r.latencyByStatusWithoutOwnStallsMs!["200"]!.count).toBe(100);
    expect(r.latencyByStatusWithoutOwnStallsMs!["200"]!.max).toBeCloseTo(1, 2);
    expect(r.latencyByStatusWithoutOwnStallsMs!["503"]!.count).toBe(1);
    expect(r.ownStalls).toEqual({ ...ownStalls, requestsInFlight: 2 });
    expect(formatSummary(r)).toContain("generator's own loop stalled 1 times over 5.000 ms (longest 38.2 ms), 2 requests due or in flight then; 200s without them: p99 0.990 ms");
  });
});
