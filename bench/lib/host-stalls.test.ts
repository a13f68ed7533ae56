import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { probeHostStalls, stallsNote, stallsText, summarizeStalls } from "./host-stalls.ts";

test("a probe's gaps are summed up per second: over 1 ms, over 5 ms, the longest and the share stalled", () => {
  const s = summarizeStalls("1", 2, [0.3, 1.5, 0.7, 6.66, 2.2]);
  expect(s).toEqual({ cpu: "1", seconds: 2, over1msPerS: 1.5, over5msPerS: 0.5, maxMs: 6.66, stalledShare: 0.0057 });
  expect(stallsText(s)).toBe("1.5 stalls/s over 1 ms, 0.5/s over 5 ms, longest 6.66 ms (core 1, 2.0 s)");
  // A suite's note names what was probed around, and says when a probe did not run.
  const note = stallsNote("the latency runs", s, null);
  expect(note).toContain("before the latency runs 1.5 stalls/s over 1 ms");
  expect(note).toContain("after them n/a.");
});

test("a quiet core: no stalls", () => {
  expect(summarizeStalls("0", 1, [])).toEqual({ cpu: "0", seconds: 1, over1msPerS: 0, over5msPerS: 0, maxMs: 0, stalledShare: 0 });
});

test("the probe runs (pinned where taskset exists) and reports the time it probed", async () => {
  const s = await probeHostStalls(resolve(import.meta.dir, "../.."), "0", 0.2);
  expect(s.cpu).toBe("0");
  expect(s.seconds).toBeGreaterThanOrEqual(0.2);
  expect(s.seconds).toBeLessThan(1);
  expect(s.stalledShare).toBeGreaterThanOrEqual(0);
  expect(s.stalledShare).toBeLessThanOrEqual(1);
});
