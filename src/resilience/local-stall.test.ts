import { describe, expect, test } from "bun:test";
import { LocalStallError, raceDeadline, StorageTimeoutError } from "../kv/storage-errors.ts";
import { firedLate, judgeTimeout, LATENESS_JUDGE, LoopStallJudge } from "./local-stall.ts";
import { LoopLagProbe } from "./loop-lag.ts";

const timeout = (budgetMs: number, lateMs: number) => new StorageTimeoutError("shard s1 read", budgetMs, lateMs);

describe("LoopStallJudge", () => {
  test("a timer late by more than a quarter of its budget (and 5 ms) blames the process", () => {
    expect(firedLate(20, 4)).toBe(false);
    expect(firedLate(20, 5.5)).toBe(true);
    expect(firedLate(1000, 200)).toBe(false);
    expect(firedLate(1000, 260)).toBe(true);
    expect(firedLate(4, 3)).toBe(false); // under the 5 ms floor: timer jitter
    expect(LATENESS_JUDGE.stalled(timeout(20, 30))?.why).toBe("its timer fired 30 ms late");
    expect(LATENESS_JUDGE.stalled(timeout(20, 1))).toBeNull();
  });

  test("with the loop's view: an overload episode or a turn over half the budget blames the process", () => {
    const loop = { overloaded: false, lastTurnMs: 2 };
    const judge = new LoopStallJudge(loop);
    expect(judge.stalled(timeout(20, 1))).toBeNull();
    loop.lastTurnMs = 12;
    expect(judge.stalled(timeout(20, 1))?.why).toBe("event loop turn of 12 ms");
    loop.lastTurnMs = 2;
    loop.overloaded = true;
    expect(judge.stalled(timeout(20, 1))?.why).toBe("event loop overloaded");
  });

  test("judgeTimeout turns only blamed timeouts into LocalStallError, keeping the timeout as its cause", () => {
    const late = timeout(20, 30);
    const judged = judgeTimeout(LATENESS_JUDGE, late);
    expect(judged).toBeInstanceOf(LocalStallError);
    expect((judged as LocalStallError).code).toBe("local_stall");
    expect((judged as LocalStallError).retryable).toBe(true);
    expect((judged as LocalStallError).cause).toBe(late);
    const timely = timeout(20, 0);
    expect(judgeTimeout(LATENESS_JUDGE, timely)).toBe(timely);
    const other = new Error("not a timeout");
    expect(judgeTimeout(LATENESS_JUDGE, other)).toBe(other);
  });
});

describe("raceDeadline", () => {
  test("tells the timeout how late its timer fired: a loop blocked past the due time shows as lateness", async () => {
    let lateMs = -1;
    const raced = raceDeadline(new Promise<never>(() => {}), 10, (late) => {
      lateMs = late;
      return new Error("timeout");
    });
    // Block the event loop well past the timer's due time: the timer cannot run before this ends.
    const until = performance.now() + 60;
    while (performance.now() < until) {
      // busy
    }
    await expect(raced).rejects.toThrow("timeout");
    expect(lateMs).toBeGreaterThanOrEqual(45);
  });

  test("a settled race reports no lateness and clears its timer", async () => {
    expect(await raceDeadline(Promise.resolve(7), 10, () => new Error("timeout"))).toBe(7);
  });
});

describe("LoopLagProbe", () => {
  test("keeps the largest lag of the current and the previous window; an old stall ages out", () => {
    const probe = new LoopLagProbe(10, 200);
    probe.tick(0);
    probe.tick(10); // on time
    expect(probe.recentMaxMs()).toBe(0);
    probe.tick(60); // ran 40 ms late
    expect(probe.recentMaxMs()).toBe(40);
    expect(probe.behindMs()).toBe(40);
    probe.tick(70); // caught up: behind no more, but the stall is still recent
    expect(probe.behindMs()).toBe(0);
    expect(probe.recentMaxMs()).toBe(40);
    for (let t = 80; t <= 260; t += 10) probe.tick(t); // a new window starts at 200: the stall is now the previous one's
    expect(probe.recentMaxMs()).toBe(40);
    for (let t = 270; t <= 420; t += 10) probe.tick(t); // and after one more window it is gone
    expect(probe.recentMaxMs()).toBe(0);
  });

  test("a late probe's lateness is a request's wait only until the loop has polled its sockets once since", () => {
    // The loop's check phases, run by hand: the second one after the probe comes after a poll.
    let queued: (() => void)[] = [];
    const checkPhase = () => {
      const run = queued;
      queued = [];
      for (const fn of run) fn();
    };
    const probe = new LoopLagProbe(10, 200, (fn) => queued.push(fn));
    probe.tick(0);
    probe.tick(40); // 30 ms late: a long turn of reply handling just ended
    expect(probe.behindMs()).toBe(30); // requests read in the next poll waited through it
    checkPhase(); // this turn's immediates
    expect(probe.behindMs()).toBe(30); // the poll after them has not run yet
    checkPhase(); // after the next poll: whatever is read now arrived after the loop caught up
    expect(probe.behindMs()).toBe(0);
    expect(probe.recentMaxMs()).toBe(30); // the stall judge still sees the recent lag
    // A later late probe is held afresh; an older one's release does not cut it short.
    probe.tick(70); // 20 ms late
    checkPhase();
    probe.tick(100); // 20 ms late again, in the next turn
    checkPhase(); // the first hold's release: the second one's poll is still to come
    expect(probe.behindMs()).toBe(20);
    checkPhase();
    expect(probe.behindMs()).toBe(0);
    // Jitter is never held.
    probe.tick(110.5);
    expect(probe.behindMs()).toBe(0);
    expect(queued.length).toBe(0);
  });

  test("a judge with the probe blames timeouts while the loop has been running behind", () => {
    const probe = new LoopLagProbe(10, 200);
    probe.tick(0);
    const judge = new LoopStallJudge(undefined, probe);
    expect(judge.stalled(timeout(20, 0))).toBeNull();
    probe.tick(40); // 30 ms late
    expect(judge.stalled(timeout(20, 0))?.why).toBe("event loop 30 ms behind");
  });
});
