/**
 * How long each event-loop turn serves requests while CPU overload is being
 * shed (loop-pressure.ts), learnt from what the refusals cost.
 *
 * A short budget makes every answer, 503s included, come soon: a request
 * waits out the turn before it in its socket. Under an open load (many
 * independent callers) that costs nothing: arrivals grow with the turn's
 * length, so the share of a turn spent refusing is set by how far the load
 * is over capacity, not by the budget (a turn's own work aside: the poll
 * and the end-of-turn callback, which is why the floor is 1 ms and not 0.5,
 * README). A closed population — a fixed number of
 * connections, each sending again the moment it is answered, as k6's
 * virtual users or a retry loop that ignores Retry-After — is different:
 * each turn holds the same arrivals however long it is, and the shorter the
 * budget the more of them are refused and sent again, so refusals eat the
 * core (32 such connections: 2.7–3.0k lookups a second with 0.5 ms turns,
 * 3.7–3.9k with 1 ms, 4.8–4.9k serving to the 5 ms target).
 *
 * So the budget starts at its floor and climbs by trial. Over a window of
 * turns it measures the share of their time spent serving, which is what
 * the lookups answered follow, and the requests that arrived per ms of the
 * window. Where a tenth or more of the turns went to refusals, it doubles
 * the budget for a window and keeps the step only if both moved as a
 * closed population moves them: N connections refused at f each leave
 * b / (b + N·f) of a turn to serving, which doubling b raises (by GAIN or
 * more), and they arrive N per turn, so fewer per ms once turns are longer
 * (by FEWER or more) — unless refusals make up nearly all of each turn (a
 * slow machine, a huge population), where the turn barely lengthens but
 * serving grows by as much as the budget (by BIG or more). An open load
 * arrives at its own rate whatever the turns, and its serving share is set
 * by the overload, not the budget; a longer turn may still serve a little
 * more there (the loop's own work per turn is spread thinner), but at the
 * cost of every answer's wait, so that is not taken. Otherwise the budget returns and waits longer
 * before trying again. Above the floor it tries halving now and then (and
 * right after a longer budget did not help), and undoes that only on the
 * same signature in reverse, so a load that turns open again gets short
 * turns back. A new overload starts from the floor.
 */
export interface TurnBudgetOptions {
  /** The shortest budget (ms), where each overload starts. */
  readonly floorMs: number;
  /** The longest (ms), at most the overload delay target. */
  readonly ceilingMs: number;
  /** Length (ms) of a window of turns over which a budget is judged (default 100, the overload interval). */
  readonly windowMs?: number;
}

/** Below this share of a window's turn time spent refusing, a longer budget is not worth trying. */
const WORTH_TRYING = 0.1;
/** Relative change of the serving share that tells a budget step helped (kept longer) or hurt (undone shorter). */
const GAIN = 0.05;
/** Relative fall in arrivals per ms with longer turns (rise with shorter) that tells a closed population. */
const FEWER = 0.15;
/** A relative gain of the serving share that tells a closed population by itself (an open load's comes from the loop's per-turn work, a few percent). */
const BIG = 0.25;
/** Fewest shedding turns in a window for its share to count. */
const MIN_TURNS = 4;
/** Windows between trials of a shorter budget while above the floor. */
const SHORTER_EVERY = 10;
/** Windows to wait after a longer budget did not help, doubling per failure up to MAX_WAIT. */
const FIRST_WAIT = 2;
const MAX_WAIT = 64;

type Phase = "hold" | "longer" | "shorter";

export class TurnBudget {
  private budget: number;
  /** The budget before the trial under way: where an undone trial returns. */
  private prior: number;
  private phase: Phase = "hold";
  /** The serving share and the arrivals per ms under the budget before the trial (the ones to compare with). */
  private before = 0;
  private beforeRate = 0;
  private windowsHeld = 0;
  private wait = FIRST_WAIT;
  private windowStart = Number.NaN;
  private turns = 0;
  private turnTime = 0;
  private servingTime = 0;
  private arrivals = 0;
  private readonly floor: number;
  private readonly ceiling: number;
  private readonly windowMs: number;

  constructor(options: TurnBudgetOptions) {
    this.floor = options.floorMs;
    this.ceiling = Math.max(options.ceilingMs, options.floorMs);
    this.windowMs = options.windowMs ?? 100;
    if (!(this.floor > 0)) throw new Error(`turn budget floor: expected > 0 ms, got ${options.floorMs}`);
    if (!(this.windowMs > 0)) throw new Error(`turn budget window: expected > 0 ms, got ${options.windowMs}`);
    this.budget = this.floor;
    this.prior = this.floor;
  }

  /** The current budget (ms). */
  get ms(): number {
    return this.budget;
  }

  /** Does the budget adapt at all (a ceiling above the floor)? */
  get adapts(): boolean {
    return this.ceiling > this.floor;
  }

  /** A new overload: start from the floor. */
  reset(now: number): void {
    this.budget = this.floor;
    this.prior = this.floor;
    this.phase = "hold";
    this.windowsHeld = 0;
    this.wait = FIRST_WAIT;
    this.startWindow(now);
  }

  /**
   * A finished shedding turn whose requests were served from memory: its
   * length (ms, from its first arrival to its end), the part of it spent
   * serving (the rest went to refusals) and its arrivals.
   */
  noteTurn(end: number, lengthMs: number, servingMs: number, arrivals: number): void {
    if (!this.adapts) return;
    if (Number.isNaN(this.windowStart)) this.startWindow(end - lengthMs);
    this.turns++;
    this.turnTime += lengthMs;
    this.servingTime += Math.min(servingMs, lengthMs);
    this.arrivals += arrivals;
    const span = end - this.windowStart;
    if (span < this.windowMs || this.turns < MIN_TURNS) return;
    const serving = this.turnTime > 0 ? this.servingTime / this.turnTime : 1;
    const rate = this.arrivals / span;
    this.startWindow(end);
    this.judge(serving, rate);
  }

  /** `serving`: the share of the window's turn time spent serving requests; `rate`: its arrivals per ms. */
  private judge(serving: number, rate: number): void {
    const worthTrying = 1 - serving >= WORTH_TRYING && this.budget < this.ceiling;
    switch (this.phase) {
      case "longer":
        if (serving >= this.before * (1 + GAIN) && (rate <= this.beforeRate * (1 - FEWER) || serving >= this.before * (1 + BIG))) {
          this.wait = FIRST_WAIT;
          if (worthTrying) this.tryLonger(serving, rate);
          else this.hold();
        } else {
          // Not a closed population: arrivals kept their rate (an open load) or serving gained nothing.
          this.budget = this.prior;
          this.wait = Math.min(this.wait * 2, MAX_WAIT);
          if (this.budget > this.floor) this.tryShorter(this.before, this.beforeRate);
          else this.hold();
        }
        return;
      case "shorter":
        if (serving <= this.before * (1 - GAIN) && (rate >= this.beforeRate * (1 + FEWER) || serving * (1 + BIG) <= this.before)) {
          this.budget = this.prior;
          this.hold();
        } else if (this.budget > this.floor) {
          this.tryShorter(serving, rate);
        } else {
          this.hold();
        }
        return;
      case "hold":
        this.windowsHeld++;
        if (this.budget > this.floor && this.windowsHeld >= SHORTER_EVERY) this.tryShorter(serving, rate);
        else if (worthTrying && this.windowsHeld >= this.wait) this.tryLonger(serving, rate);
    }
  }

  private tryLonger(serving: number, rate: number): void {
    this.prior = this.budget;
    this.before = serving;
    this.beforeRate = rate;
    this.budget = Math.min(this.ceiling, this.budget * 2);
    this.phase = "longer";
  }

  private tryShorter(serving: number, rate: number): void {
    this.prior = this.budget;
    this.before = serving;
    this.beforeRate = rate;
    this.budget = Math.max(this.floor, this.budget / 2);
    this.phase = "shorter";
  }

  private hold(): void {
    this.phase = "hold";
    this.windowsHeld = 0;
  }

  private startWindow(now: number): void {
    this.windowStart = now;
    this.turns = 0;
    this.turnTime = 0;
    this.servingTime = 0;
    this.arrivals = 0;
  }
}
