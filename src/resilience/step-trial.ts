/**
 * A setting learnt by trial between a floor and a ceiling, for the settings
 * whose shorter values answer refusals sooner and whose longer values save
 * refusals when the refused clients send again at once: the turn budget of
 * CPU shedding (turn-budget.ts) and the standing admission queue's wait
 * (standing-wait.ts).
 *
 * It starts at the floor. Each judged window brings two figures: `served`,
 * what a longer value should raise (the share of turn time spent serving, or
 * lookups answered per ms), and `rate`, arrivals per ms. Where a window says
 * a longer value is worth trying, the value doubles for a window and keeps
 * the step only if both moved as a closed population moves them — a fixed
 * number of clients, each sending again the moment it is answered (k6's
 * virtual users, a retry loop that ignores Retry-After): they arrive once
 * per answer, so fewer per ms once refusals take longer (by `fewer` or
 * more), and `served` rises by `gain` or more (a negative `gain` tolerates a
 * fall that large) — or `served` alone rises by `big` or more. An open load
 * arrives at its own rate whatever the setting. Otherwise the value returns
 * and the learner waits longer (doubling, up to MAX_WAIT windows) before it
 * tries again. Above the floor it tries halving now and then (and right
 * after a longer value did not help), and undoes that only on the same
 * signature in reverse, so a load that turns open again gets the short value
 * back. `reset` (a new overload) starts from the floor.
 */
export interface StepTrialOptions {
  /** The shortest value, where each overload starts. */
  readonly floor: number;
  /** The longest. */
  readonly ceiling: number;
  /** Relative change of `served` that tells a step helped (kept longer) or hurt (undone shorter); negative: a fall tolerated. */
  readonly gain: number;
  /** Relative fall of arrivals per ms with a longer value (rise with a shorter) that tells a closed population. */
  readonly fewer: number;
  /** A relative gain of `served` that tells a closed population by itself (Infinity: never). */
  readonly big: number;
}

/** Windows between trials of a shorter value while above the floor. */
const SHORTER_EVERY = 10;
/** Windows to wait after a longer value did not help, doubling per failure up to MAX_WAIT. */
const FIRST_WAIT = 2;
const MAX_WAIT = 64;

type Phase = "hold" | "longer" | "shorter";

export class StepTrial {
  private current: number;
  /** The value before the trial under way: where an undone trial returns. */
  private prior: number;
  private phase: Phase = "hold";
  /** `served` and the arrivals per ms under the value before the trial (the ones to compare with). */
  private before = 0;
  private beforeRate = 0;
  private windowsHeld = 0;
  private wait = FIRST_WAIT;
  readonly floor: number;
  readonly ceiling: number;

  constructor(private readonly o: StepTrialOptions) {
    this.floor = o.floor;
    this.ceiling = Math.max(o.ceiling, o.floor);
    this.current = this.floor;
    this.prior = this.floor;
  }

  /** The current value. */
  get value(): number {
    return this.current;
  }

  /** Does the value adapt at all (a ceiling above the floor)? */
  get adapts(): boolean {
    return this.ceiling > this.floor;
  }

  /** A new overload: start from the floor. */
  reset(): void {
    this.current = this.floor;
    this.prior = this.floor;
    this.phase = "hold";
    this.windowsHeld = 0;
    this.wait = FIRST_WAIT;
  }

  /**
   * One window's figures: `served` (what a longer value should raise),
   * `rate` (arrivals per ms), and whether enough of the window went to
   * refusals for a longer value to be worth trying.
   */
  judge(served: number, rate: number, refusalsMatter: boolean): void {
    const worthTrying = refusalsMatter && this.current < this.ceiling;
    const { gain, fewer, big } = this.o;
    switch (this.phase) {
      case "longer":
        if (served >= this.before * (1 + gain) && (rate <= this.beforeRate * (1 - fewer) || served >= this.before * (1 + big))) {
          this.wait = FIRST_WAIT;
          if (worthTrying) this.tryLonger(served, rate);
          else this.hold();
        } else {
          // Not a closed population: arrivals kept their rate (an open load) or serving did not gain.
          this.current = this.prior;
          this.wait = Math.min(this.wait * 2, MAX_WAIT);
          if (this.current > this.floor) this.tryShorter(this.before, this.beforeRate);
          else this.hold();
        }
        return;
      case "shorter":
        if (served <= this.before * (1 - gain) && (rate >= this.beforeRate * (1 + fewer) || served * (1 + big) <= this.before)) {
          this.current = this.prior;
          this.hold();
        } else if (this.current > this.floor) {
          this.tryShorter(served, rate);
        } else {
          this.hold();
        }
        return;
      case "hold":
        this.windowsHeld++;
        if (this.current > this.floor && this.windowsHeld >= SHORTER_EVERY) this.tryShorter(served, rate);
        else if (worthTrying && this.windowsHeld >= this.wait) this.tryLonger(served, rate);
    }
  }

  private tryLonger(served: number, rate: number): void {
    this.prior = this.current;
    this.before = served;
    this.beforeRate = rate;
    this.current = Math.min(this.ceiling, this.current * 2);
    this.phase = "longer";
  }

  private tryShorter(served: number, rate: number): void {
    this.prior = this.current;
    this.before = served;
    this.beforeRate = rate;
    this.current = Math.max(this.floor, this.current / 2);
    this.phase = "shorter";
  }

  private hold(): void {
    this.phase = "hold";
    this.windowsHeld = 0;
  }
}
