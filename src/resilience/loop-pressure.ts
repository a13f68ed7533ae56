import type { LoopLag } from "./loop-lag.ts";
import { TurnBudget } from "./turn-budget.ts";

/**
 * Shedding for CPU-bound overload, which a concurrency limit cannot see.
 *
 * A lookup answered from process memory runs start to end in one turn of the
 * event loop, so in-flight requests never exceed one and the adaptive limit
 * never binds: under overload the queue forms in socket buffers, before any
 * code of ours runs. What the process can see is the turn: one poll of the
 * sockets hands the loop every request that arrived meanwhile, and they are
 * served one after another, so the k-th request of a turn has waited for the
 * k−1 before it. That wait — the time since the turn's first request — is
 * the request's sojourn time in the loop, measured per request with no timer
 * of its own: the first request of a turn notes the time and schedules an
 * immediate, which runs when the turn is over. With a lag probe
 * (loop-lag.ts), how far behind the loop was when the turn began is added:
 * the first request had waited that long in its socket while the loop ran
 * turns that read no requests — those that handle storage replies and
 * encode answers. Without it, a server on Redis shards under overload
 * admitted far more reply work than its turns showed (bench, 100-entity
 * lookups at 3x: goodput net of failed shard reads ~0 against 0.73–0.91 with
 * it, admitted p99 300–670 ms against ~50 ms).
 *
 * The control law is CoDel's on that sojourn time. While turns stay within
 * `targetMs`, nothing is shed. Once turns have run over the target back to
 * back (no idle gap longer than the target between them) for `sustainMs`
 * while at least `minArrivals` requests arrived (a single long turn — a
 * garbage collection, a descheduled process on a busy machine, a burst of
 * in-process requests — is not overload), the loop is overloaded: each turn
 * then serves requests for at most its budget (`turnMs` at first, learnt
 * longer up to `maxTurnMs` for clients that resend at once: turn-budget.ts)
 * and none that has waited over the target, and answers the rest 503 at
 * once, which costs about what the HTTP parse costs, a small share of a
 * batch lookup. So a turn lasts about its budget plus its refusals, and a
 * request, admitted or refused, waits about two of them: the turn before
 * it, which it waited out in its socket,
 * and its place in its own. Detection and shedding take different bounds on
 * purpose: a turn over 5 ms is what says the load is more than the core can
 * serve (a closed loop of a few connections, a GC pause, a descheduled
 * process stay under it or do not last), but once that is established,
 * letting turns run to 5 ms only makes every answer, 503s included, wait
 * for them (measured: admitted p99 3.4–5.5x the unloaded p99 and refusals
 * 11–13 ms after the send with turns of 5 ms). And a refusal need not wait
 * for the serving at all: each turn refuses its first arrivals, a count
 * learnt from what the turns before had to refuse after their budget
 * (adaptRefuseFirst), then serves. The overload ends once no
 * request has been refused for `sustainMs`, or once a stretch of `sustainMs`
 * refused no more than 1 in 20 of its arrivals: the load has fallen to what
 * the core serves, and what is still refused are the stragglers of a GC
 * pause, not an excess (a short idle gap between turns does not end it:
 * under overload the loop may still wait briefly for clients to send again).
 */
export interface LoopPressure {
  /**
   * Should a sheddable request that starts at `now` (ms, the admission clock)
   * be served? `inFlight`: admitted requests still waiting on storage.
   */
  pass(now: number, inFlight?: number): boolean;
  /** Is the loop in an overload episode (shedding what waits beyond the target)? */
  readonly overloaded: boolean;
  /** Length of the last finished turn (ms), from its first request to its end. */
  readonly lastTurnMs: number;
  /** How long (ms) each turn now serves requests while shedding (turn-budget.ts). */
  readonly turnBudgetMs: number;
}

export interface LoopPressureOptions {
  /** Sojourn (ms) a request may have waited in its turn and still be served under overload (default 5, CoDel's target). */
  readonly targetMs?: number;
  /** How long (ms) turns must run over the target, back to back, before shedding starts, and the stretch over which its end is judged (default 100, CoDel's interval). */
  readonly sustainMs?: number;
  /** Once overloaded, how long (ms) each turn serves requests before it refuses the rest, at first (default and at most: the target). */
  readonly turnMs?: number;
  /**
   * The longest the budget may grow to (ms) while refusals eat the turns and
   * a longer budget saves them (turn-budget.ts): default and at most the
   * target; `turnMs` or less keeps the budget fixed.
   */
  readonly maxTurnMs?: number;
  /** Requests that must arrive meanwhile (default 100): without a queue of them there is nothing to shed. */
  readonly minArrivals?: number;
}

/** Runs `fn` once the current turn of the event loop is over (setImmediate on the real loop). */
export type EndOfTurn = (fn: () => void) => void;

const realEndOfTurn: EndOfTurn = (fn) => {
  setImmediate(fn);
};

/** Per-request sojourn in the current loop turn, with CoDel's entry and exit rules. */
export class TurnSojourn implements LoopPressure {
  private turnStart = -1;
  /** The loop's lag when the current turn began: what its first request had already waited (0 without a probe). */
  private turnBehind = 0;
  private turnArrivals = 0;
  /**
   * While shedding (CPU-bound, with a turn budget): how many of a turn's
   * first arrivals are refused at once, before it serves anything; adapted
   * turn by turn from `lateRefused` (see finishTurn).
   */
  private refuseFirst = 0;
  /** Arrivals of the current turn refused after its serving budget ran out. */
  private lateRefused = 0;
  /** When the current turn began to serve: its first arrival after those refused first. */
  private servingFrom = 0;
  /** When the current turn stopped serving: its first refusal after it began to serve, for the budget or the target (NaN while none). */
  private servingTo = Number.NaN;
  /** Did a request of the current turn find admitted requests waiting on storage (the budget does not apply)? */
  private turnWithStorage = false;
  /** When the current overload began: the turn it began in ran long, and its late refusals say nothing of the next. */
  private droppingSince = Number.NEGATIVE_INFINITY;
  private lastEnd = Number.NEGATIVE_INFINITY;
  private lastTurn = 0;
  /** Start of the current stretch of turns over the target (NaN when none). */
  private aboveSince = Number.NaN;
  private aboveArrivals = 0;
  /** While not shedding: end of the last turn over the target. While shedding: when a request was last refused. */
  private lastOverEnd = Number.NEGATIVE_INFINITY;
  private dropping = false;
  /** While shedding, the current stretch towards the exit: its start, its arrivals and its refusals. */
  private stretchStart = 0;
  private stretchArrivals = 0;
  private stretchRefused = 0;
  private readonly target: number;
  private readonly budget: TurnBudget;
  private readonly sustain: number;
  private readonly minArrivals: number;
  private readonly endTurn: () => void;

  constructor(
    options: LoopPressureOptions = {},
    /** The admission clock, read when a turn ends. */
    private readonly now: () => number = () => performance.now(),
    private readonly atEndOfTurn: EndOfTurn = realEndOfTurn,
    /**
     * The loop's lag (loop-lag.ts), added to each turn's sojourn: a request
     * read at the start of a turn has waited in its socket while the loop
     * ran other work — the turns that handle storage replies and encode
     * answers, which read no requests and so are not turns here.
     */
    private readonly lag?: Pick<LoopLag, "behindMs">,
  ) {
    this.target = options.targetMs ?? 5;
    this.sustain = options.sustainMs ?? 100;
    this.minArrivals = options.minArrivals ?? 100;
    const turnMs = Math.min(options.turnMs ?? this.target, this.target);
    if (!(this.target > 0)) throw new Error(`overload delay target: expected > 0 ms, got ${this.target}`);
    if (!(this.sustain >= 0)) throw new Error(`overload sustain: expected >= 0 ms, got ${this.sustain}`);
    if (!(turnMs > 0)) throw new Error(`overload turn budget: expected > 0 ms, got ${options.turnMs}`);
    const maxTurnMs = Math.min(options.maxTurnMs ?? this.target, this.target);
    this.budget = new TurnBudget({ floorMs: turnMs, ceilingMs: maxTurnMs, windowMs: this.sustain > 0 ? this.sustain : undefined });
    this.endTurn = () => this.finishTurn(this.now());
  }

  /** Read live: with no requests arriving, the overload is over once `sustain` has passed since the last over-target turn. */
  get overloaded(): boolean {
    return this.dropping && this.now() - this.lastOverEnd < this.sustain;
  }

  get lastTurnMs(): number {
    return this.lastTurn;
  }

  get turnBudgetMs(): number {
    return this.budget.ms;
  }

  pass(now: number, inFlight = 0): boolean {
    if (this.turnStart < 0) this.beginTurn(now);
    this.turnArrivals++;
    const inTurn = now - this.turnStart;
    const waited = inTurn + this.turnBehind;
    if (this.dropping) {
      this.stretchArrivals++;
      // The turn budget is for a loop whose work is the requests themselves. With requests waiting on
      // storage, turns also handle their replies, and the concurrency limit sheds what storage cannot
      // take: cutting turns short there refused requests the limit had room for (Redis shards at 3x:
      // twice the loop's refusals, more reads timing out, no better latency).
      if (inFlight > 0) {
        this.turnWithStorage = true;
        if (waited <= this.target) return true;
      } else if (this.turnArrivals > this.refuseFirst) {
        // The budget counts from the end of the refusals first: a turn serves as much as it would have without them.
        if (this.turnArrivals === this.refuseFirst + 1) this.servingFrom = now;
        const withinTarget = waited <= this.target;
        if (withinTarget && now - this.servingFrom <= this.budget.ms) return true;
        if (Number.isNaN(this.servingTo)) this.servingTo = now;
        // Refused for the budget, not for a stall (the lag probe's wait): an excess the next turn will have too.
        if (withinTarget) this.lateRefused++;
      }
      this.stretchRefused++;
      this.lastOverEnd = now;
      return false;
    }
    // Entry can happen mid-turn: a turn holding a long queue is cut once the stretch has lasted `sustain`.
    if (waited > this.target) {
      const since = Number.isNaN(this.aboveSince) ? this.turnStart : this.aboveSince;
      if (now - since >= this.sustain && this.aboveArrivals + this.turnArrivals >= this.minArrivals) {
        this.startDropping(now);
        this.stretchArrivals = 1;
        this.stretchRefused = 1;
        return false;
      }
    }
    return true;
  }

  private startDropping(now: number): void {
    this.dropping = true;
    this.droppingSince = now;
    this.refuseFirst = 0;
    this.budget.reset(now);
    this.lastOverEnd = now;
    this.stretchStart = now;
    this.stretchArrivals = 0;
    this.stretchRefused = 0;
  }

  private beginTurn(now: number): void {
    this.turnStart = now;
    this.turnBehind = this.lag?.behindMs() ?? 0;
    this.turnArrivals = 0;
    this.lateRefused = 0;
    this.servingFrom = now;
    this.servingTo = Number.NaN;
    this.turnWithStorage = false;
    // An idle loop before this turn had room: whatever arrives now is no excess (and after an
    // overload, the first requests are not refused for what its last turns refused).
    if (!this.dropping || now - this.lastEnd >= this.budget.ms) this.refuseFirst = 0;
    this.atEndOfTurn(this.endTurn);
    // Towards entry only back-to-back turns count: an idle gap longer than the target means there was room.
    if (!this.dropping && now - this.lastEnd > this.target) this.aboveSince = Number.NaN;
    this.settle(now);
  }

  /**
   * Exit, while shedding: no refusal for `sustain` (idle time counts: the
   * loop had room), or a stretch of `sustain` that refused at most 1 in
   * MAX_STRAGGLERS of its arrivals. Not shedding, this only clears a stale
   * stretch towards entry. Between the turns of an overload the loop may
   * wait briefly for clients to send again, so a short idle gap does not end it.
   */
  private settle(now: number): void {
    if (this.dropping && now - this.stretchStart >= this.sustain) {
      if (this.stretchRefused * MAX_STRAGGLERS <= this.stretchArrivals) {
        this.dropping = false;
        this.aboveSince = Number.NaN;
        return;
      }
      this.stretchStart = now;
      this.stretchArrivals = 0;
      this.stretchRefused = 0;
    }
    if (now - this.lastOverEnd < this.sustain) return;
    this.dropping = false;
    this.aboveSince = Number.NaN;
  }

  /**
   * Refusals first. Within a turn the loop calls handlers in socket order, so
   * a request refused after the turn's serving has waited for all of it, and
   * with it the turn before (measured: 503s 2.0–2.4 ms after the send, p50).
   * A turn that still refused arrivals after its budget could have refused
   * them before serving: the next turn refuses more first (half as many
   * more, less a straggler; see below). A
   * turn that refused none after its budget may have refused too many first
   * (arrivals vary from turn to turn, and a turn that runs out of them serves
   * less than its budget): the next one refuses half as many first. Only
   * with a turn budget under the target (`--overload-turn-ms 0` turns it off)
   * and only for requests served from memory: with requests waiting on
   * storage the budget does not apply either.
   */
  private adaptRefuseFirst(): void {
    if (this.budget.ms >= this.target) {
      this.refuseFirst = 0;
      return;
    }
    const late = this.lateRefused;
    // Up by half the excess, as arrivals vary from turn to turn: raised by all of it, the count overshot
    // the next turn's often enough to cost ~4% of the lookups served (14 alternating pairs; half: no loss
    // seen in 6). One late refusal is a straggler, not an excess: near the exit, refusing one more first
    // for each would double what a stretch refuses and keep the overload from ending.
    if (late > 1) this.refuseFirst += (late - 1) >> 1;
    else if (late === 0) this.refuseFirst >>= 1;
  }

  /** How long the current turn served requests: from its first served arrival to its first late refusal, or its end. */
  private servedMs(end: number): number {
    if (this.turnArrivals <= this.refuseFirst) return 0;
    return (Number.isNaN(this.servingTo) ? end : this.servingTo) - this.servingFrom;
  }

  private finishTurn(end: number): void {
    const start = this.turnStart - this.turnBehind;
    const length = end - start;
    this.turnStart = -1;
    this.lastTurn = length;
    this.lastEnd = end;
    // While shedding, turns are cut short on purpose: refusals, not turn lengths, say whether it goes on.
    if (this.dropping) {
      const first = start + this.turnBehind;
      if (first > this.droppingSince) {
        // How this turn split between serving and refusing, and its arrivals, tell the budget whether longer turns would serve more (turn-budget.ts).
        if (!this.turnWithStorage) this.budget.noteTurn(end, end - first, this.servedMs(end), this.turnArrivals);
        this.adaptRefuseFirst();
      }
      this.settle(end);
      return;
    }
    if (length <= this.target) {
      // The stretch towards entry is broken.
      this.aboveSince = Number.NaN;
      this.settle(end);
      return;
    }
    this.lastOverEnd = end;
    if (Number.isNaN(this.aboveSince)) {
      this.aboveSince = start;
      this.aboveArrivals = 0;
    }
    this.aboveArrivals += this.turnArrivals;
    if (end - this.aboveSince >= this.sustain && this.aboveArrivals >= this.minArrivals) this.startDropping(end);
  }
}

/** While shedding, a stretch that refused at most one in this many arrivals ends the overload: what it refused were stragglers. */
const MAX_STRAGGLERS = 20;
