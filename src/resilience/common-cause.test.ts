import { describe, expect, test } from "bun:test";
import { CommonStallError, LocalStallError, StalledTrialError, StorageTimeoutError } from "../kv/storage-errors.ts";
import { CommonCauseJudge } from "./common-cause.ts";
import { judgeTimeout, LATENESS_JUDGE, type StallJudge, type StallVerdict } from "./local-stall.ts";
import { isShardFault } from "./shard-policies.ts";

const NEVER: StallJudge = { stalled: () => null };
const timeout = (budgetMs = 20) => new StorageTimeoutError("read", budgetMs, 0);

function harness(shards = 3, inner: StallJudge = NEVER) {
  let now = 10_000;
  let count = shards;
  const judge = new CommonCauseJudge(inner, () => count, {}, () => now);
  return {
    judge,
    at: (t: number) => {
      now = t;
    },
    setShards: (n: number) => {
      count = n;
    },
    verdict: (shard: string, trial = false, budgetMs = 20): StallVerdict | null => judge.stalled(timeout(budgetMs), { shard, trial }),
  };
}

describe("CommonCauseJudge", () => {
  test("one shard timing out alone is that shard's fault, however often", () => {
    const h = harness();
    for (let t = 10_000; t < 12_000; t += 10) {
      h.at(t);
      expect(h.verdict("s1")).toBeNull();
    }
  });

  test("timeouts of most shards within the window are a common cause's; the first of them is charged, until a verdict covering it", () => {
    const h = harness();
    h.at(10_000);
    expect(h.verdict("s1")).toBeNull(); // nobody else yet
    h.at(10_005);
    // The span reaches a window back from the episode's start: s1's charged timeout is in it (ResilientShard forgives it).
    expect(h.verdict("s2")).toEqual({ cause: "common", why: "2 of 3 shards timed out within 100 ms", spanMs: 100 });
    h.at(10_010);
    expect(h.verdict("s3")?.why).toBe("3 of 3 shards timed out within 100 ms");
    h.at(10_020);
    expect(h.verdict("s1")?.cause).toBe("common");
  });

  test("the window is twice the budget, at least 100 ms: older timeouts of other shards do not count", () => {
    const h = harness();
    h.at(10_000);
    h.verdict("s1");
    h.at(10_150);
    expect(h.verdict("s2")).toBeNull(); // 150 ms apart, budget 20: window 100
    h.at(20_000);
    h.verdict("s1");
    h.at(20_150);
    expect(h.verdict("s2", false, 80)?.cause).toBe("common"); // budget 80: window 160
  });

  test("more than half of the shards: two of four is not enough, three is; one shard alone never", () => {
    const h = harness(4);
    h.at(10_000);
    h.verdict("s1");
    expect(h.verdict("s2")).toBeNull();
    expect(h.verdict("s3")?.cause).toBe("common");
    const single = harness(1);
    single.at(10_000);
    expect(single.verdict("s1")).toBeNull();
    expect(single.verdict("s1")).toBeNull();
  });

  test("a shard's correlated timeouts are excused for a second in all within the breakers' window (a tier-wide outage must open the breakers); a new stall after that window is excused again", () => {
    const h = harness();
    const excused: boolean[] = [];
    for (let t = 10_000; t <= 11_500; t += 10) {
      h.at(t);
      for (const s of ["s1", "s2", "s3"]) excused.push(h.verdict(s) !== null);
    }
    // 10_000: s1 charged (first), then excused through 11_000, then charged.
    expect(excused[0]).toBe(false);
    expect(excused.slice(1, 300).every((e) => e)).toBe(true); // up to t = 10_990
    h.at(11_010);
    expect(h.verdict("s1")).toBeNull();
    // Reads answering again, then a new stall within the breakers' window: the shards have spent their second.
    for (const s of ["s1", "s2", "s3"]) h.judge.answered(s);
    h.at(11_700);
    h.verdict("s1");
    h.at(11_705);
    expect(h.verdict("s2")).toBeNull();
    // Ten seconds on, what the last outage spent is out of the window: a stall is excused again.
    for (const s of ["s1", "s2", "s3"]) h.judge.answered(s);
    h.at(22_000);
    h.verdict("s1");
    h.at(22_005);
    expect(h.verdict("s2")?.cause).toBe("common");
  });

  test("short stalls with the shards answering between them add up only their own lengths: ten 80 ms stalls in 10 s are excused", () => {
    const h = harness();
    const causes: (string | null)[] = [];
    for (let stall = 0; stall < 10; stall++) {
      for (let t = 0; t <= 80; t += 10) {
        h.at(10_000 + stall * 1000 + t);
        for (const s of ["s1", "s2", "s3"]) causes.push(h.verdict(s)?.cause ?? null);
      }
      for (const s of ["s1", "s2", "s3"]) h.judge.answered(s);
    }
    // Each stall's first timeout is charged (nothing correlated yet); every other one is excused.
    expect(causes.filter((c) => c === null)).toHaveLength(10);
  });

  test("a hung shard and a slow one timing out together under light traffic, a third answering, are excused for their first second only", () => {
    const h = harness();
    const verdicts: (string | null)[] = [];
    // A lookup every 250 ms: s1 hung, s2 slow (both time out), s3 answers. Before, each lookup was a new episode (the
    // gap was longer than the window and a shard had answered in it): excused for good, no breaker ever opened.
    for (let t = 10_000, n = 0; t <= 13_000; t += 250, n++) {
      h.at(t);
      // Whichever times out first in a lookup is not correlated yet; the order changes from lookup to lookup.
      const [first, second] = n % 2 === 0 ? ["s1", "s2"] : ["s2", "s1"];
      h.verdict(first!);
      verdicts.push(h.verdict(second!)?.cause ?? null);
      h.judge.answered("s3");
    }
    expect(verdicts.slice(0, 4)).toEqual(["common", "common", "common", "common"]);
    expect(verdicts.slice(-6)).toEqual([null, null, null, null, null, null]);
  });

  test("a gap in which no shard read answered does not end the episode: a tier down under light traffic opens the breakers", () => {
    const h = harness();
    // One lookup every 300 ms, each timing out on every shard together (the gaps are longer than the window).
    const verdicts: (string | null)[] = [];
    for (let t = 10_000; t <= 12_000; t += 300) {
      h.at(t);
      for (const s of ["s1", "s2", "s3"]) verdicts.push(h.verdict(s)?.cause ?? null);
    }
    // Excused for the episode's first second, then counted: every lookup after 11,000 charges its shards.
    expect(verdicts.slice(-9)).toEqual([null, null, null, null, null, null, null, null, null]);
    expect(verdicts.slice(1, 3)).toEqual(["common", "common"]);
    // With every shard's reads answering between them, each lookup's timeouts are a stretch of their own (excused).
    const h2 = harness();
    const later: (string | null)[] = [];
    for (let t = 10_000; t <= 12_000; t += 300) {
      h2.at(t);
      for (const s of ["s1", "s2", "s3"]) later.push(h2.verdict(s)?.cause ?? null);
      for (const s of ["s1", "s2", "s3"]) h2.judge.answered(s);
    }
    expect(later.slice(-2)).toEqual(["common", "common"]);
  });

  test("timeouts the process-local judge excuses still extend the episode: a tier-wide outage is not excused past its first second", () => {
    let stalled = false;
    const local: StallJudge = { stalled: () => (stalled ? { cause: "local", why: "event loop overloaded" } : null) };
    const h = harness(3, local);
    for (let t = 10_000; t <= 11_200; t += 10) {
      h.at(t);
      // Mostly blamed on the loop (long turns while every shard hangs); the others 150 ms apart, more than the window.
      stalled = (t / 10) % 15 !== 0;
      for (const s of ["s1", "s2", "s3"]) {
        const v = h.verdict(s);
        if (!stalled && t > 10_000 && t <= 10_990) expect(v?.cause).toBe("common");
        if (!stalled && t > 11_010) expect(v).toBeNull();
      }
    }
  });

  test("a breaker's trial is never excused, local or common (a stalled trial, which the breaker counts), but its timeout still counts for the other shards", () => {
    const h = harness();
    h.at(10_000);
    h.verdict("s1");
    h.at(10_001);
    const trial = timeout();
    const judged = judgeTimeout(h.judge, trial, { shard: "s2", trial: true });
    expect(judged).toBeInstanceOf(StalledTrialError);
    expect((judged as StalledTrialError).cause).toBe(trial);
    expect((judged as StalledTrialError).message).toContain("most shards timed out together (2 of 3 shards timed out within 100 ms)");
    expect(isShardFault(judged as Error)).toBe(true);
    const late = new StorageTimeoutError("read", 20, 40); // a local stall, were it not a trial
    expect((judgeTimeout(LATENESS_JUDGE, late, { shard: "s2", trial: true }) as Error).message).toContain("this process was stalled (its timer fired 40 ms late)");
    const timely = timeout();
    expect(judgeTimeout(LATENESS_JUDGE, timely, { shard: "s2", trial: true })).toBe(timely);
    h.at(10_002);
    expect(h.verdict("s3")).toEqual({ cause: "common", why: "3 of 3 shards timed out within 100 ms", spanMs: 100 });
    const common = judgeTimeout(h.judge, timeout(), { shard: "s3", trial: false });
    expect(common).toBeInstanceOf(CommonStallError);
    // The stretch it covers: from the shard's first correlated timeout (10,002) less the window, to now.
    expect((common as CommonStallError).spanMs).toBe(100);
    expect(isShardFault(common as Error)).toBe(false);
  });

  test("the process-local judge is asked first; its verdicts count as timeouts for the other shards", () => {
    let stalled = true;
    const local: StallJudge = { stalled: () => (stalled ? { cause: "local", why: "event loop overloaded" } : null) };
    const h = harness(3, local);
    h.at(10_000);
    expect(h.verdict("s1")).toEqual({ cause: "local", why: "event loop overloaded" });
    stalled = false;
    h.at(10_010);
    expect(h.verdict("s2")?.cause).toBe("common");
    // Without a call (no shard named) only the inner judge speaks.
    expect(h.judge.stalled(timeout())).toBeNull();
  });

  test("a process-local verdict within a stretch of correlated timeouts stands, with the stretch's span; alone, or past the episode's first second, without", () => {
    let stalled = false;
    const local: StallJudge = { stalled: () => (stalled ? { cause: "local", why: "event loop overloaded" } : null) };
    const h = harness(3, local);
    h.at(10_000);
    stalled = true;
    expect(h.verdict("s1")).toEqual({ cause: "local", why: "event loop overloaded" }); // nobody else yet
    h.at(10_005);
    stalled = false;
    expect(h.verdict("s2")?.cause).toBe("common");
    h.at(10_010);
    stalled = true;
    // The span reaches a window back from the shard's first correlated timeout (now): its charged one at 10,000 is in it.
    expect(h.verdict("s1")).toEqual({ cause: "local", why: "event loop overloaded", spanMs: 100 });
    const judged = judgeTimeout(h.judge, timeout(), { shard: "s3", trial: false });
    expect(judged).toBeInstanceOf(LocalStallError);
    expect((judged as LocalStallError).spanMs).toBe(100);
    // The episode goes on past its first second: no longer excused as common, and no span to take anything back.
    for (let t = 10_020; t <= 11_020; t += 20) {
      h.at(t);
      h.verdict("s2");
      h.verdict("s3");
    }
    expect(h.verdict("s1")).toEqual({ cause: "local", why: "event loop overloaded" });
  });

  test("the shard count is read at each verdict (shards added by a rebalance)", () => {
    const h = harness(3);
    h.at(10_000);
    h.verdict("s1");
    h.setShards(5);
    expect(h.verdict("s2")).toBeNull(); // 2 of 5
    expect(h.verdict("s3")?.why).toBe("3 of 5 shards timed out within 100 ms");
  });

  test("bad settings are refused", () => {
    expect(() => new CommonCauseJudge(NEVER, () => 3, { maxEpisodeMs: -1 })).toThrow(/episode/);
    expect(() => new CommonCauseJudge(NEVER, () => 3, { minWindowMs: 0 })).toThrow(/window/);
    expect(() => new CommonCauseJudge(NEVER, () => 3, { accountMs: 0 })).toThrow(/account/);
  });
});
