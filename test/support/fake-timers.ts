import type { BoundTimers } from "../../src/api/work-bounds.ts";

interface Armed {
  readonly at: number;
  readonly fire: () => void;
}

/**
 * Work bounds' timers under the test's control (src/api/work-bounds.ts): a
 * timer fires only when the test says so, so a test of work given up at its
 * bound waits for no real time and does not depend on the machine's speed.
 */
export class FakeTimers implements BoundTimers {
  private readonly armed = new Set<Armed>();
  /** The clock while `fire` runs; the real one otherwise. */
  private firing: number | undefined;
  /** Timers armed so far, fired, cleared or pending. */
  armedTotal = 0;

  /** How far `advance` has moved this clock ahead of the real one (ms). */
  private ahead = 0;
  /** With `frozen`: the real clock when made, which this clock then reads in its place. */
  private readonly base: number | undefined;

  /**
   * `frozen`: the clock moves only by `advance` (it reads its start plus every
   * advance), not with the real one as well: a test that measures a quiet time
   * on it (--grpc-stream-idle) does not count the real time a loaded machine
   * takes between its steps.
   */
  constructor(options: { frozen?: boolean } = {}) {
    this.base = options.frozen === true ? performance.now() : undefined;
  }

  now(): number {
    return this.firing ?? this.real() + this.ahead;
  }

  private real(): number {
    return this.base ?? performance.now();
  }

  /**
   * Moves the clock `ms` ahead, for good (it reads the real clock, or its
   * start when `frozen`, plus every advance since), and fires the timers due by then: a bound measured from
   * an earlier `now()` passes without waiting for it.
   */
  advance(ms: number): number {
    this.ahead += ms;
    return this.fire(this.real() + this.ahead);
  }

  set(at: number, fire: () => void): unknown {
    const t: Armed = { at, fire };
    this.armed.add(t);
    this.armedTotal++;
    return t;
  }

  clear(timer: unknown): void {
    this.armed.delete(timer as Armed);
  }

  /** When each armed timer fires (performance.now() ms), soonest first. */
  get pending(): number[] {
    return [...this.armed].map((t) => t.at).sort((a, b) => a - b);
  }

  /**
   * The clock reads `upTo` (default: the end of time) while every timer due by
   * then fires, soonest first, and those they arm if due too; answers how many fired.
   */
  fire(upTo = Number.POSITIVE_INFINITY): number {
    this.firing = upTo;
    let fired = 0;
    try {
      for (;;) {
        const next = [...this.armed].filter((t) => t.at <= upTo).sort((a, b) => a.at - b.at)[0];
        if (next === undefined) return fired;
        this.armed.delete(next);
        fired++;
        next.fire();
      }
    } finally {
      this.firing = undefined;
    }
  }
}
