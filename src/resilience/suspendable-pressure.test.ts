import { expect, test } from "bun:test";
import { type EndOfTurn, TurnSojourn } from "./loop-pressure.ts";
import { SuspendablePressure } from "./suspendable-pressure.ts";

/** A loop-turn signal on a fake clock whose turns end when the test says. */
function signal() {
  let now = 0;
  const ends: (() => void)[] = [];
  const endOfTurn: EndOfTurn = (fn) => {
    ends.push(fn);
  };
  const inner = new TurnSojourn({ targetMs: 5, sustainMs: 100, turnMs: 1, minArrivals: 10 }, () => now, endOfTurn);
  /** One turn of `n` requests spread over `ms`; how many passed. */
  const turn = (p: { pass(now: number): boolean }, n: number, ms: number): number => {
    let passed = 0;
    for (let i = 0; i < n; i++) {
      if (p.pass(now)) passed++;
      now += ms / n;
    }
    for (const end of ends.splice(0)) end();
    return passed;
  };
  return { inner, turn };
}

test("suspended, every request passes and the signal underneath hears none of them; resumed, it judges again from a clean slate", () => {
  const { inner, turn } = signal();
  const p = new SuspendablePressure(inner);
  p.suspend();
  // Turns of 8 ms back to back for 400 ms: overload, had the signal heard them.
  let passed = 0;
  for (let t = 0; t < 50; t++) passed += turn(p, 20, 8);
  expect(passed).toBe(1000);
  expect(p.overloaded).toBe(false);
  expect(inner.overloaded).toBe(false);
  p.resume();
  expect(p.isSuspended).toBe(false);
  // The same turns, heard: the signal starts shedding once they have lasted its 100 ms interval.
  let refused = 0;
  for (let t = 0; t < 50; t++) refused += 20 - turn(p, 20, 8);
  expect(refused).toBeGreaterThan(0);
  expect(p.overloaded).toBe(true);
});

test("the same turns without the wrapper are shed: what a suspended signal would have refused", () => {
  const { inner, turn } = signal();
  let refused = 0;
  for (let t = 0; t < 50; t++) refused += 20 - turn(inner, 20, 8);
  expect(refused).toBeGreaterThan(0);
});
