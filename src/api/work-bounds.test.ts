import { describe, expect, test } from "bun:test";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { OverdueWatch } from "./work-bounds.ts";

describe("OverdueWatch", () => {
  test("one timer for all the work in flight, armed at the soonest bound; work that ended before its bound is not given up", () => {
    const timers = new FakeTimers();
    const watch = new OverdueWatch(timers);
    const given: string[] = [];
    const a = watch.watch(100, () => given.push("a"));
    watch.watch(50, () => given.push("b"));
    const c = watch.watch(200, () => given.push("c"));
    expect(timers.pending).toEqual([50]);
    expect(timers.armedTotal).toBe(2);

    expect(timers.fire(50)).toBe(1);
    expect(given).toEqual(["b"]);
    expect(timers.pending).toEqual([100]);
    // `a` ends before its bound: the timer firing then gives nothing up and moves on to `c`.
    expect(watch.ended(a)).toBe(true);
    timers.fire(100);
    expect(given).toEqual(["b"]);
    expect(timers.pending).toEqual([200]);
    timers.fire();
    expect(given).toEqual(["b", "c"]);
    // Given up: its late end changes nothing.
    expect(watch.ended(c)).toBe(false);
    expect(watch.size).toBe(0);
    expect(timers.pending).toEqual([]);
  });

  test("work watched while others are given up (a queued request admitted into a freed slot) keeps its own bound", () => {
    const timers = new FakeTimers();
    const watch = new OverdueWatch(timers);
    const given: string[] = [];
    watch.watch(100, () => {
      given.push("a");
      watch.watch(150, () => given.push("admitted"));
    });
    watch.watch(300, () => given.push("b"));
    timers.fire(100);
    expect(given).toEqual(["a"]);
    expect(timers.pending).toEqual([150]);
    timers.fire(200);
    expect(given).toEqual(["a", "admitted"]);
    expect(timers.pending).toEqual([300]);
  });

  test("an idle watch arms nothing", () => {
    const timers = new FakeTimers();
    const watch = new OverdueWatch(timers);
    const w = watch.watch(100, () => {});
    watch.ended(w);
    timers.fire();
    expect(timers.pending).toEqual([]);
    expect(timers.armedTotal).toBe(1);
  });
});
