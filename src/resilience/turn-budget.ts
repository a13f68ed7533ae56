import { StepTrial } from "./step-trial.ts";

/**
 * How long each event-loop turn serves requests while CPU overload is being
 * shed (loop-pressure.ts), learnt from what the refusals cost.
 *
 * A short budget makes every answer, 503s included, come soon: a request
 * waits out the turn before it in its socket. Under an open load (many
 * independent callers) that costs nothing: arrivals grow with the turn's
 * length, so the share of a turn spent refusing is set by how far the load
 * is over capacity, not by the budget (a turn's own work aside: the poll
 * and the end-of-turn callback, which is why the floor is 0.75 ms and not 0.5,
 * README.md here, "How fast a 503 comes"). A closed population — a fixed number of
 * connections, each sending again the moment it is answered, as k6's
 * virtual users or a retry loop that ignores Retry-After — is different:
 * each turn holds the same arrivals however long it is, and the shorter the
 * budget the more of them are refused and sent again, so refusals eat the
 * core (32 such connections: 2.7–3.0k lookups a second with 0.5 ms turns,
 * 3.7–3.9k with 1 ms, 4.8–4.9k serving to the 5 ms target).
 *
 * So the budget starts at its floor and climbs by trial (step-trial.ts).
 * Over a window of turns it measures the share of their time spent serving,
 * which is what the lookups answered follow, and the requests that arrived
 * per ms of the window. Where a tenth or more of the turns went to refusals,
 * it doubles the budget for a window and keeps the step only if both moved
 * as a closed population moves them: N connections refused at f each leave
 * b / (b + N·f) of a turn to serving, which doubling b raises (by 5% or
 * more), and they arrive N per turn, so fewer per ms once turns are longer
 * (by 15% or more) — unless refusals make up nearly all of each turn (a
 * slow machine, a huge population), where the turn barely lengthens but
 * serving grows by as much as the budget (by 25% or more). An open load
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
/** Fewest shedding turns in a window for its share to count. */
const MIN_TURNS = 4;

export class TurnBudget {
  /**
   * The trials (step-trial.ts): a step must raise the serving share by 5%
   * and cut arrivals per ms by 15%, or raise the share by 25% alone (an open
   * load's gain comes from the loop's per-turn work, a few percent).
   */
  private readonly trial: StepTrial;
  private windowStart = Number.NaN;
  private turns = 0;
  private turnTime = 0;
  private servingTime = 0;
  private arrivals = 0;
  private readonly windowMs: number;

  constructor(options: TurnBudgetOptions) {
    this.windowMs = options.windowMs ?? 100;
    if (!(options.floorMs > 0)) throw new Error(`turn budget floor: expected > 0 ms, got ${options.floorMs}`);
    if (!(this.windowMs > 0)) throw new Error(`turn budget window: expected > 0 ms, got ${options.windowMs}`);
    this.trial = new StepTrial({ floor: options.floorMs, ceiling: options.ceilingMs, gain: 0.05, fewer: 0.15, big: 0.25 });
  }

  /** The current budget (ms). */
  get ms(): number {
    return this.trial.value;
  }

  /** Does the budget adapt at all (a ceiling above the floor)? */
  get adapts(): boolean {
    return this.trial.adapts;
  }

  /** A new overload: start from the floor. */
  reset(now: number): void {
    this.trial.reset();
    this.startWindow(now);
  }

  /**
   * A finished shedding turn whose requests were served from memory: its
   * length (ms, from its first arrival to its end), the part of it spent
   * serving (the rest went to refusals) and its arrivals.
   */
  noteTurn(end: number, lengthMs: number, servingMs: number, arrivals: number): void {
    if (!this.trial.adapts) return;
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
    this.trial.judge(serving, rate, 1 - serving >= WORTH_TRYING);
  }

  private startWindow(now: number): void {
    this.windowStart = now;
    this.turns = 0;
    this.turnTime = 0;
    this.servingTime = 0;
    this.arrivals = 0;
  }
}
