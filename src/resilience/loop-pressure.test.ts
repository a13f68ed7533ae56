import { describe, expect, test } from "bun:test";
import { TurnSojourn } from "./loop-pressure.ts";

/**
 * A fake event loop: a clock the test moves, and end-of-turn callbacks the
 * test runs when it ends a turn. No timers, no sleeping.
 */
function fakeLoop(options: ConstructorParameters<typeof TurnSojourn>[0], lag?: { behindMs(): number }) {
  let now = 0;
  let pending: (() => void) | undefined;
  const p = new TurnSojourn(
    options,
    () => now,
    (fn) => {
      if (pending !== undefined) throw new Error("a second end-of-turn callback in one turn");
      pending = fn;
    },
    lag,
  );
  /** One turn: `requests` requests, each taking `eachMs` of CPU once admitted, refusals `shedMs`; then `idleMs` with nothing to do. S for each served, R for each refused, in arrival order. */
  const run = (requests: number, eachMs: number, idleMs: number, shedMs: number, inFlight: number): string => {
    let out = "";
    for (let i = 0; i < requests; i++) {
      const served = p.pass(now, inFlight);
      out += served ? "S" : "R";
      now += served ? eachMs : shedMs;
    }
    const end = pending;
    pending = undefined;
    end?.();
    now += idleMs;
    return out;
  };
  return {
    p,
    /** One turn (see `run`); returns how many were served. */
    turn: (requests: number, eachMs: number, idleMs = 0, shedMs = 0, inFlight = 0): number => run(requests, eachMs, idleMs, shedMs, inFlight).replaceAll("R", "").length,
    /** One turn with nothing waiting on storage, answered as `run` writes it. */
    trace: (requests: number, eachMs: number, shedMs: number, idleMs = 0): string => run(requests, eachMs, idleMs, shedMs, 0),
    get now() {
      return now;
    },
  };
}

describe("TurnSojourn", () => {
  test("calm turns serve everything and schedule one end-of-turn callback each", () => {
    const loop = fakeLoop({ targetMs: 2 });
    for (let i = 0; i < 1000; i++) expect(loop.turn(3, 0.3, 1)).toBe(3);
    expect(loop.p.overloaded).toBe(false);
    expect(loop.p.lastTurnMs).toBeCloseTo(0.9, 6);
  });

  test("one long turn is not overload: a GC pause (few requests) or a burst shorter than sustainMs", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    // A 40 ms pause with two requests in it.
    expect(loop.turn(2, 20, 5)).toBe(2);
    // A burst of 600 requests taking 30 ms in one turn (in-process tests do this), then the loop idles.
    expect(loop.turn(600, 0.05, 5)).toBe(600);
    expect(loop.p.overloaded).toBe(false);
    // Long turns back to back but with only a handful of requests: nothing queued, nothing to shed.
    for (let i = 0; i < 20; i++) expect(loop.turn(2, 5)).toBe(2);
    expect(loop.p.overloaded).toBe(false);
  });

  test("sustained long turns: each turn serves requests until their wait reaches the target, refuses the rest", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    // 30 requests of 0.3 ms per turn, back to back: 9 ms turns, the queue never drains.
    let served = 0;
    for (let i = 0; i < 5; i++) served += loop.turn(30, 0.3);
    expect(served).toBe(150);
    expect(loop.p.overloaded).toBe(false);
    // The sixth turn reaches 50 ms of over-target turns at its 18th request (45 ms + 17 × 0.3): from there on it sheds.
    expect(loop.turn(30, 0.3, 0, 0.01)).toBe(17);
    expect(loop.p.overloaded).toBe(true);
    // Now requests served only while they waited ≤ 2 ms in their turn: at 0.3 ms each, the first 7 (waits 0 .. 1.8 ms).
    expect(loop.turn(30, 0.3, 0, 0.01)).toBe(7);
    expect(loop.p.lastTurnMs).toBeCloseTo(7 * 0.3 + 23 * 0.01, 6);
    expect(loop.p.overloaded).toBe(true);
  });

  test("with a lag probe, what the loop was behind when a turn began counts as its requests' wait (the storage-reply turns it cannot see)", () => {
    const lag = { behind: 0, behindMs() { return this.behind; } };
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 }, lag);
    // Calm: a small lag alone never refuses anything.
    lag.behind = 1.5;
    for (let i = 0; i < 100; i++) expect(loop.turn(3, 0.1, 1)).toBe(3);
    expect(loop.p.overloaded).toBe(false);
    // Short request turns (1.2 ms, under the target by themselves) while the loop is 4 ms behind: over the target, back to back.
    lag.behind = 4;
    for (let i = 0; i < 40 && !loop.p.overloaded; i++) loop.turn(4, 0.3);
    expect(loop.p.overloaded).toBe(true);
    // Shedding: the first request has already waited 4 ms > 2 ms, so a turn serves none of them...
    expect(loop.turn(4, 0.3, 0, 0.01)).toBe(0);
    // ...and when the loop catches up, requests wait only in their turn again.
    lag.behind = 0.4;
    expect(loop.turn(10, 0.3, 0, 0.01)).toBe(6); // waits 0.4, 0.7, ... 1.9 ms
  });

  test("a single turn holding a long queue is cut once the stretch has lasted sustainMs", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    // 500 queued requests of 0.3 ms would make a 150 ms turn; shedding starts at the first request after 50 ms.
    const served = loop.turn(500, 0.3, 0, 0.01);
    expect(served).toBe(Math.ceil(50 / 0.3));
    expect(loop.p.overloaded).toBe(true);
  });

  test("ends once no turn has run over the target for sustainMs; short idle gaps between overloaded turns do not end it", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 10; i++) loop.turn(30, 0.3);
    expect(loop.p.overloaded).toBe(true);
    // Clients take 3 ms to send again between turns: still one overload, still shedding.
    for (let i = 0; i < 20; i++) expect(loop.turn(30, 0.3, 3, 0.01)).toBe(7);
    expect(loop.p.overloaded).toBe(true);
    // Load drops: short turns (and idle time) for 45 ms keep the state, 50 ms end it.
    const calm = loop.now - 3; // the last overloaded turn ended before its 3 ms gap
    while (loop.now - calm < 45) loop.turn(3, 0.3, 1);
    expect(loop.p.overloaded).toBe(true);
    while (loop.now - calm < 51) loop.turn(3, 0.3, 1);
    expect(loop.p.overloaded).toBe(false);
    // Then a queue is served in full again until a new stretch builds up.
    expect(loop.turn(30, 0.3)).toBe(30);
  });

  test("reads as over once sustainMs has passed without an over-target turn, even with no request arriving to notice", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 10; i++) loop.turn(30, 0.3);
    expect(loop.p.overloaded).toBe(true);
    loop.turn(0, 0, 60);
    expect(loop.p.overloaded).toBe(false);
  });

  test("bursts separated by idle time never add up to an overload", () => {
    const loop = fakeLoop({ targetMs: 2, sustainMs: 50, minArrivals: 100 });
    // 600-request bursts of 30 ms each, 5 ms apart (a test awaiting one burst before the next).
    for (let i = 0; i < 10; i++) expect(loop.turn(600, 0.05, 5)).toBe(600);
    expect(loop.p.overloaded).toBe(false);
  });

  test("with a turn budget under the target: detection by the target, then each turn serves for the budget only, and short turns do not end the overload", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    // 3x overload of 0.3 ms requests: each turn holds what arrived during the last one; 10 ms turns at first.
    let arrivals = 33;
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(arrivals, 0.3);
    expect(loop.p.overloaded).toBe(true);
    // Shedding: requests served while the turn has run at most 1 ms (0, 0.3, 0.6, 0.9), the rest refused at 0.01 ms each
    // (those refused first, see below, take their 0.01 ms from the budget: then 3 or 4).
    for (let i = 0; i < 200; i++) {
      const before = loop.now;
      const served = loop.turn(arrivals, 0.3, 0, 0.01);
      expect(served).toBeGreaterThanOrEqual(3);
      expect(served).toBeLessThanOrEqual(4);
      // The next turn holds what arrived meanwhile, at 3x what the core serves (10 requests per ms of 0.3 ms each).
      arrivals = Math.max(5, Math.round((loop.now - before) * 10));
    }
    // Turns of ~1.3 ms, far under the 5 ms target, yet the overload goes on: most arrivals are still refused.
    expect(loop.p.lastTurnMs).toBeLessThan(2);
    expect(loop.p.overloaded).toBe(true);
  });

  test("with a turn budget: the overload ends once a stretch refuses at most 1 in 20 arrivals, though stragglers are still refused", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3);
    expect(loop.p.overloaded).toBe(true);
    // Load falls below what the core serves: turns of 3 requests, and every 10th turn one of 5 (its 5th refused: 1 in 32 arrivals).
    let refused = 0;
    let turns = 0;
    while (loop.p.overloaded && turns < 1000) {
      const n = turns % 10 === 9 ? 5 : 3;
      refused += n - loop.turn(n, 0.3, 0.5, 0.01);
      turns++;
    }
    expect(refused).toBeGreaterThan(0);
    expect(loop.p.overloaded).toBe(false);
    // Two stretches of 50 ms at most (the first began at entry with the big turns' refusals).
    expect(turns * 1.4).toBeLessThan(2 * 50 + 10);
    // Then turns over the budget are served in full again.
    expect(loop.turn(5, 0.3, 0.5)).toBe(5);
  });

  test("with a turn budget, a request that has waited over the target is still refused at the start of a turn (the lag probe's reading)", () => {
    const lag = { behind: 0, behindMs() { return this.behind; } };
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 }, lag);
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3);
    expect(loop.p.overloaded).toBe(true);
    lag.behind = 6;
    expect(loop.turn(10, 0.3, 0, 0.01)).toBe(0);
    lag.behind = 0.5;
    // The budget counts the turn's own time; the wait bound (the target) counts the lag too.
    expect(loop.turn(10, 0.3, 0, 0.01)).toBe(4);
  });

  test("while shedding, a turn refuses first what the turns before refused after their budget, so 503s do not wait for the serving", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3, 0, 0.01);
    expect(loop.p.overloaded).toBe(true);
    // 14 arrivals a turn, 0.3 ms each to serve, 0.01 ms to refuse: 4 fit the 1 ms budget.
    const turns = Array.from({ length: 8 }, () => loop.trace(14, 0.3, 0.01));
    // The first turn after the one the overload began in (which ran long: its refusals say nothing) serves first;
    // then the count refused first grows by half of each turn's late refusals beyond one, and settles.
    expect(turns).toEqual(["SSSSRRRRRRRRRR", "RRRRSSSSRRRRRR", "RRRRRRSSSSRRRR", "RRRRRRRSSSSRRR", "RRRRRRRRSSSSRR", "RRRRRRRRSSSSRR", "RRRRRRRRSSSSRR", "RRRRRRRRSSSSRR"]);
    // The budget counts from the end of the refusals first: every turn serves as many as with the serving first.
    for (const t of turns) expect(t.replaceAll("R", "").length).toBe(4);
  });

  test("refusing first backs off when arrivals fall short (halved after a turn that refused none late), and a straggler does not raise it", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3, 0, 0.01);
    for (let i = 0; i < 8; i++) loop.trace(14, 0.3, 0.01);
    expect(loop.trace(33, 0.3, 0.01)).toBe(`RRRRRRRRSSSS${"R".repeat(21)}`);
    // 18 to refuse first now; the load falls to 6 a turn: all refused while the count, halved each turn, is 6 or more.
    const falling = Array.from({ length: 6 }, () => loop.trace(6, 0.3, 0.01, 0.5));
    expect(falling).toEqual(["RRRRRR", "RRRRRR", "RRRRSS", "RRSSSS", "RSSSSR", "RSSSSR"]);
    // None refused late: down to 0. A single late refusal (a straggler) then does not raise it.
    expect(loop.trace(3, 0.3, 0.01, 0.5)).toBe("RSS");
    expect(loop.trace(5, 0.3, 0.01, 0.5)).toBe("SSSSR");
    expect(loop.trace(3, 0.3, 0.01, 0.5)).toBe("SSS");
  });

  test("a turn after the loop idled refuses nothing first: the load has gone, and the first requests after it are served", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3, 0, 0.01);
    for (let i = 0; i < 8; i++) loop.trace(14, 0.3, 0.01);
    expect(loop.trace(14, 0.3, 0.01, 2)).toBe("RRRRRRRRSSSSRR");
    // 2 ms idle, then one request: served, though the turns before refused 8 first.
    expect(loop.trace(1, 0.3, 0.01, 2)).toBe("S");
    expect(loop.trace(2, 0.3, 0.01)).toBe("SS");
  });

  test("with the budget at the target (--overload-turn-ms 0), turns serve first, as before", () => {
    const loop = fakeLoop({ targetMs: 5, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3, 0, 0.01);
    expect(loop.p.overloaded).toBe(true);
    for (let i = 0; i < 5; i++) expect(loop.trace(33, 0.3, 0.01)).toBe(`${"S".repeat(17)}${"R".repeat(16)}`);
  });

  test("with requests waiting on storage, an overloaded turn is cut at the target, not the budget (the concurrency limit sheds for storage)", () => {
    const loop = fakeLoop({ targetMs: 5, turnMs: 1, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 20 && !loop.p.overloaded; i++) loop.turn(33, 0.3);
    expect(loop.p.overloaded).toBe(true);
    // Waits 0, 0.3, ... 4.8 ms are within the 5 ms target: 17 served, as before the budget.
    expect(loop.turn(33, 0.3, 0, 0.01, 8)).toBe(17);
    // Nothing in flight: the 1 ms budget again.
    expect(loop.turn(33, 0.3, 0, 0.01, 0)).toBe(4);
  });

  test("rejects a non-positive turn budget; a budget over the target is the target", () => {
    expect(() => new TurnSojourn({ targetMs: 5, turnMs: 0 })).toThrow("overload turn budget");
    const loop = fakeLoop({ targetMs: 2, turnMs: 10, sustainMs: 50, minArrivals: 100 });
    for (let i = 0; i < 10; i++) loop.turn(30, 0.3);
    expect(loop.p.overloaded).toBe(true);
    expect(loop.turn(30, 0.3, 0, 0.01)).toBe(7);
  });

  test("rejects a non-positive target", () => {
    expect(() => new TurnSojourn({ targetMs: 0 })).toThrow("overload delay target");
  });
});
