import { StepTrial } from "./step-trial.ts";

/**
 * How long a waiter may wait for a slot while the admission queue stands
 * (admission-queue.ts), learnt from what the refusals cost.
 *
 * While the queue stands it serves the newest waiter first, so a waiter that
 * has seen a millisecond of newer arrivals pass it is almost never served:
 * keeping it longer only delays its 503. Under an open load (independent
 * callers) a short wait costs nothing: 3 Redis shards at 3x capacity,
 * 100-entity lookups, refusals came 3.8–4.7 ms after the send with a 1 ms
 * wait against 8.6–9.9 ms with the 5 ms target, as many lookups answered.
 * A closed population is different: each refused client sends again as soon
 * as it is answered, so the shorter the wait the more often it comes back
 * to be refused again, and refusals eat the core (64 connections: 0.82–0.83
 * of capacity answered with a 1 ms wait, 8.9k refusals a second, against
 * 0.95–0.97 with 5 ms, 4.6k).
 *
 * So each standing episode starts at the floor and the wait climbs by trial
 * (step-trial.ts): over windows of `windowMs` it counts arrivals (admitted
 * or refused) and lookups answered without failure; where a tenth or more of
 * the arrivals were refused, it doubles the wait for a window and keeps it
 * only if arrivals per ms fell by 10% or more (measured on that rig: ~18%
 * per doubling for the closed population, nothing for an open one) while
 * answers per ms fell by no more than 15% (a window holds a few hundred
 * answers on Redis, so their count swings by ~7%; a longer wait costs no
 * answers in principle: the slots are busy either way).
 */
export interface StandingWaitOptions {
  /** The shortest wait (ms), where each standing episode starts. */
  readonly floorMs: number;
  /** The longest (ms). Equal to the floor: fixed. */
  readonly ceilingMs: number;
  /** Length of a judged window (ms). */
  readonly windowMs: number;
}

/** Below this share of a window's arrivals refused, a longer wait is not worth trying. */
const WORTH_TRYING = 0.1;

export class StandingWait {
  private readonly trial: StepTrial;
  private windowStart = Number.NaN;
  /** Running totals at the window's start. */
  private arrivals0 = 0;
  private answered0 = 0;
  private refused0 = 0;

  constructor(private readonly o: StandingWaitOptions) {
    if (!(o.floorMs > 0)) throw new Error(`standing wait floor: expected > 0 ms, got ${o.floorMs}`);
    if (!(o.windowMs > 0)) throw new Error(`standing wait window: expected > 0 ms, got ${o.windowMs}`);
    this.trial = new StepTrial({ floor: o.floorMs, ceiling: o.ceilingMs, gain: -0.15, fewer: 0.1, big: Number.POSITIVE_INFINITY });
  }

  /** The current wait (ms). */
  get ms(): number {
    return this.trial.value;
  }

  /** Does the wait adapt at all (a ceiling above the floor)? */
  get adapts(): boolean {
    return this.trial.adapts;
  }

  /** A queue began to stand at `now`: start from the floor; the running totals as they are then. */
  reset(now: number, arrivals: number, answered: number, refused: number): void {
    this.trial.reset();
    this.startWindow(now, arrivals, answered, refused);
  }

  /**
   * While the queue stands: the running totals of arrivals (admitted or
   * refused), lookups answered without failure and refusals. Judges a window
   * once `windowMs` has passed since it began; cheap otherwise.
   */
  observe(now: number, arrivals: number, answered: number, refused: number): void {
    const span = now - this.windowStart;
    if (!(span >= this.o.windowMs) || !this.trial.adapts) return;
    const came = arrivals - this.arrivals0;
    const rate = came / span;
    const served = (answered - this.answered0) / span;
    const refusalsMatter = refused - this.refused0 >= came * WORTH_TRYING;
    this.startWindow(now, arrivals, answered, refused);
    if (came > 0) this.trial.judge(served, rate, refusalsMatter);
  }

  private startWindow(now: number, arrivals: number, answered: number, refused: number): void {
    this.windowStart = now;
    this.arrivals0 = arrivals;
    this.answered0 = answered;
    this.refused0 = refused;
  }
}
