import { describe, expect, test } from "bun:test";
import { TurnSojourn } from "./loop-pressure.ts";
import { TurnBudget } from "./turn-budget.ts";

/** A 100-entity lookup and a refusal, in ms of the core (measured on this project's machines: ~170 µs and ~13 µs). */
const LOOKUP_MS = 0.17;
const REFUSAL_MS = 0.013;

/**
 * A fake event loop fed by one of two client populations: `closed` (that many
 * connections, each sending again the moment it is answered, so every turn
 * holds all of them) or `open` (arrivals at a fixed rate, so a turn holds what
 * arrived during the one before). Runs whole turns on a fake clock; nothing
 * sleeps.
 */
function simulate(options: { turnMs: number; maxTurnMs?: number; refusalMs?: number }) {
  const refusalMs = options.refusalMs ?? REFUSAL_MS;
  let now = 0;
  let pending: (() => void) | undefined;
  const p = new TurnSojourn(
    { targetMs: 5, sustainMs: 100, minArrivals: 100, turnMs: options.turnMs, maxTurnMs: options.maxTurnMs },
    () => now,
    (fn) => {
      pending = fn;
    },
  );
  let carry = 0;
  let lastTurn = 1;
  /** Runs turns for `ms` of fake time; returns lookups served and refused, and the budgets seen at each turn's end. */
  const run = (ms: number, load: { closed: number } | { perMs: number }, inFlight = 0) => {
    let served = 0;
    let refused = 0;
    const budgets: number[] = [];
    const until = now + ms;
    while (now < until) {
      let arrivals: number;
      if ("closed" in load) {
        arrivals = load.closed;
      } else {
        carry += load.perMs * lastTurn;
        arrivals = Math.floor(carry);
        carry -= arrivals;
      }
      const start = now;
      if (arrivals === 0) {
        now += 0.05;
        lastTurn = 0.05;
        continue;
      }
      for (let i = 0; i < arrivals; i++) {
        if (p.pass(now, inFlight)) {
          served++;
          now += LOOKUP_MS;
        } else {
          refused++;
          now += refusalMs;
        }
      }
      const end = pending;
      pending = undefined;
      end?.();
      budgets.push(p.turnBudgetMs);
      // Polling and the end-of-turn callback.
      now += 0.005;
      lastTurn = now - start;
    }
    return { served, refused, budgets };
  };
  return { p, run };
}

const last = (xs: number[]) => xs[xs.length - 1];

describe("TurnBudget", () => {
  test("a closed population that resends at once: the budget climbs until refusals cost little (4 ms here), and more lookups are answered than at the floor", () => {
    const adaptive = simulate({ turnMs: 0.5 });
    const fixed = simulate({ turnMs: 0.5, maxTurnMs: 0.5 });
    const a = adaptive.run(3000, { closed: 32 });
    const f = fixed.run(3000, { closed: 32 });
    expect(adaptive.p.overloaded).toBe(true);
    expect(last(a.budgets)).toBeGreaterThanOrEqual(4);
    expect(last(f.budgets)).toBe(0.5);
    // At the floor most arrivals are refused and sent again; with 5 ms turns only the excess over the target is.
    expect(f.refused).toBeGreaterThan(4 * f.served);
    expect(a.served).toBeGreaterThan(1.4 * f.served);
    expect(a.refused).toBeLessThan(f.refused / 3);
  });

  test("a large closed population (256 connections, refusals most of each turn) climbs too", () => {
    const adaptive = simulate({ turnMs: 1 });
    const fixed = simulate({ turnMs: 1, maxTurnMs: 1 });
    const a = adaptive.run(3000, { closed: 256 });
    const f = fixed.run(3000, { closed: 256 });
    expect(last(a.budgets)).toBeGreaterThanOrEqual(4);
    expect(a.served).toBeGreaterThan(2 * f.served);
  });

  test("on a slow, busy machine refusals make up nearly all of each turn: a closed population still climbs, an open load still answers as many", () => {
    // 256 connections refused at 0.15 ms each: a turn is ~38 ms of refusals around 1 ms of serving, and doubling
    // the budget barely lengthens it (arrivals per ms fall ~2%), but serving doubles.
    const closed = simulate({ turnMs: 1, refusalMs: 0.15 });
    const closedFixed = simulate({ turnMs: 1, maxTurnMs: 1, refusalMs: 0.15 });
    const c = closed.run(5000, { closed: 256 });
    const cf = closedFixed.run(5000, { closed: 256 });
    expect(last(c.budgets)).toBeGreaterThanOrEqual(4);
    expect(c.served).toBeGreaterThan(2 * cf.served);
    const open = simulate({ turnMs: 1, refusalMs: 0.05 });
    const openFixed = simulate({ turnMs: 1, maxTurnMs: 1, refusalMs: 0.05 });
    const o = open.run(10_000, { perMs: 4 / LOOKUP_MS });
    const of = openFixed.run(10_000, { perMs: 4 / LOOKUP_MS });
    expect(open.p.overloaded).toBe(true);
    expect(o.served).toBeGreaterThan(0.95 * of.served);
    expect(o.budgets.filter((b) => b === 1).length / o.budgets.length).toBeGreaterThan(0.75);
  });

  test("an open load at 3x capacity: the budget stays at the floor nearly always, and as many lookups are answered", () => {
    const adaptive = simulate({ turnMs: 0.5 });
    const fixed = simulate({ turnMs: 0.5, maxTurnMs: 0.5 });
    const a = adaptive.run(10_000, { perMs: 3 / LOOKUP_MS });
    const f = fixed.run(10_000, { perMs: 3 / LOOKUP_MS });
    expect(adaptive.p.overloaded).toBe(true);
    const atFloor = a.budgets.filter((b) => b === 0.5).length / a.budgets.length;
    expect(atFloor).toBeGreaterThan(0.8);
    expect(a.served).toBeGreaterThan(0.95 * f.served);
  });

  test("an open load at 10x capacity: as many lookups are answered as with the budget fixed (after the long turn that starts an overload, trials may read its backlog draining as a gain)", () => {
    const adaptive = simulate({ turnMs: 1 });
    const fixed = simulate({ turnMs: 1, maxTurnMs: 1 });
    const a = adaptive.run(10_000, { perMs: 10 / LOOKUP_MS });
    const f = fixed.run(10_000, { perMs: 10 / LOOKUP_MS });
    expect(adaptive.p.overloaded).toBe(true);
    expect(a.served).toBeGreaterThan(0.95 * f.served);
  });

  test("a closed population that turns into an open load gets short turns back", () => {
    const sim = simulate({ turnMs: 0.5 });
    expect(last(sim.run(3000, { closed: 32 }).budgets)).toBeGreaterThanOrEqual(4);
    const open = sim.run(5000, { perMs: 3 / LOOKUP_MS });
    expect(sim.p.overloaded).toBe(true);
    expect(last(open.budgets)).toBe(0.5);
  });

  test("a new overload starts from the floor", () => {
    const sim = simulate({ turnMs: 0.5 });
    expect(last(sim.run(3000, { closed: 32 }).budgets)).toBeGreaterThanOrEqual(4);
    // The load drops to what the core serves: the overload ends.
    sim.run(1000, { perMs: 0.5 / LOOKUP_MS });
    expect(sim.p.overloaded).toBe(false);
    const again = sim.run(150, { perMs: 3 / LOOKUP_MS });
    expect(sim.p.overloaded).toBe(true);
    expect(last(again.budgets)).toBe(0.5);
  });

  test("turns with requests waiting on storage teach the budget nothing (the budget does not apply to them)", () => {
    const sim = simulate({ turnMs: 0.5 });
    sim.run(3000, { closed: 32 }, 1);
    expect(sim.p.turnBudgetMs).toBe(0.5);
  });

  test("a ceiling at or below the floor keeps the budget fixed", () => {
    const b = new TurnBudget({ floorMs: 1, ceilingMs: 1, windowMs: 10 });
    expect(b.adapts).toBe(false);
    for (let t = 0; t < 1000; t += 1) b.noteTurn(t, 1, 0.1, 30);
    expect(b.ms).toBe(1);
  });

  test("by itself: a longer budget is kept only on a closed population's signature (more serving, fewer arrivals per ms); otherwise undone and tried again later, less often", () => {
    const b = new TurnBudget({ floorMs: 1, ceilingMs: 8, windowMs: 12 });
    let t = 0;
    /** One window of 5 turns of 2.5 ms each, spending `serving` of them serving, `perMs` arrivals per ms. */
    const window = (serving: number, perMs: number) => {
      for (let i = 0; i < 5; i++) {
        t += 2.5;
        b.noteTurn(t, 2.5, 2.5 * serving, 2.5 * perMs);
      }
    };
    // Refusals take half the turns; the first window judged holds the floor (FIRST_WAIT windows of it).
    window(0.5, 20);
    expect(b.ms).toBe(1);
    window(0.5, 20);
    expect(b.ms).toBe(2);
    // Serving did not gain (4% is noise): back to the floor; the next trial waits twice as long.
    window(0.52, 12);
    expect(b.ms).toBe(1);
    for (let i = 0; i < 3; i++) {
      window(0.5, 20);
      expect(b.ms).toBe(1);
    }
    window(0.5, 20);
    expect(b.ms).toBe(2);
    // Serving gained 10%, but arrivals kept their rate: an open load, where the longer turn only makes every answer wait. Undone.
    window(0.55, 20);
    expect(b.ms).toBe(1);
    for (let i = 0; i < 8; i++) window(0.5, 20);
    expect(b.ms).toBe(2);
    // This time serving gained a third and arrivals per ms fell by a third: kept, and the next step tried.
    window(0.67, 13);
    expect(b.ms).toBe(4);
    window(0.8, 8);
    expect(b.ms).toBe(8);
    // Serving 92%: kept, and refusals at 8% are not worth a further trial (at the ceiling anyway).
    window(0.92, 5);
    expect(b.ms).toBe(8);
    // Held; after SHORTER_EVERY windows a shorter budget is tried and, as serving fell by 8% and arrivals rose by half, undone.
    for (let i = 0; i < 9; i++) window(0.92, 5);
    expect(b.ms).toBe(8);
    window(0.92, 5);
    expect(b.ms).toBe(4);
    window(0.85, 7.5);
    expect(b.ms).toBe(8);
    // A shorter budget that serves a little less but sees arrivals at the same rate is kept, and the next one tried, down to the floor.
    for (let i = 0; i < 10; i++) window(0.92, 5);
    expect(b.ms).toBe(4);
    window(0.85, 5);
    expect(b.ms).toBe(2);
    window(0.84, 5);
    expect(b.ms).toBe(1);
  });
});
