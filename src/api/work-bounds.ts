import { type QuiverError, unavailable } from "../errors/index.ts";
import { MAX_TIMER_MS } from "../runtime/timers.ts";
import { MAX_LOOKUP_BUDGET_MS } from "./lookup-budget.ts";

/**
 * How long a request's work may hold its admission slot, on every edge. A
 * slot is held until the work ends (over gRPC past the call's answer), and
 * storage is trusted to end it: a lookup's reads are given its budget, a
 * write has its policies' timeouts. Work that has not ended by its bound is
 * given up: the slot goes back, a request not yet answered gets UNAVAILABLE
 * (`overdue`; HTTP 503 with Retry-After), and the edge's overdue counter
 * (`quiver_grpc_overdue_work_total{method}`, `quiver_http_overdue_work_total{route}`)
 * counts it. Before, a promise nothing settled (a store hung beyond every
 * timeout) held its slot for good: `limit` of them and every lookup and push
 * was refused until a restart, and over HTTP its client waited for good.
 */
export interface WorkBounds {
  /** A lookup's bound: this long past its budget (ms). */
  readonly graceMs: number;
  /** Any other request's bound (a push's retries, a match): this long after its admission (ms). */
  readonly maxMs: number;
}

/** A lookup's reads end at its budget; a second more covers timers that fire late on a busy loop. */
export const DEFAULT_WORK_BOUNDS: WorkBounds = { graceMs: 1000, maxMs: MAX_LOOKUP_BUDGET_MS };

/** The bounds an edge's settings give (absent: the defaults). */
export function workBounds(graceMs: number | undefined, maxMs: number | undefined): WorkBounds {
  return { graceMs: graceMs ?? DEFAULT_WORK_BOUNDS.graceMs, maxMs: maxMs ?? DEFAULT_WORK_BOUNDS.maxMs };
}

/** What a request whose work was given up at its bound is told (WorkBounds). */
export function overdue(): QuiverError {
  return unavailable("the server could not finish this call: storage did not answer within the call's bound; retry shortly", undefined, "overdue");
}

/**
 * The clock and timer bounds are kept with: a test's fake fires them when it
 * says (test/support/fake-timers.ts); `REAL_TIMERS` otherwise.
 */
export interface BoundTimers {
  /** performance.now() ms. */
  now(): number;
  /** Calls `fire` at `at` (performance.now() ms) unless cleared before; answers the timer, for `clear`. */
  set(at: number, fire: () => void): unknown;
  clear(timer: unknown): void;
}

/** Unref'd: a bound never keeps the process alive. */
export const REAL_TIMERS: BoundTimers = {
  now: () => performance.now(),
  set(at, fire) {
    const t = setTimeout(fire, Math.min(Math.max(0, at - performance.now()), MAX_TIMER_MS));
    t.unref();
    return t;
  },
  clear(timer) {
    clearTimeout(timer as ReturnType<typeof setTimeout>);
  },
};

/** Work an OverdueWatch keeps: its bound (performance.now() ms) and what giving it up does. */
export interface Watched {
  readonly at: number;
  giveUp(): void;
}

/**
 * The bounds of an edge's work in flight, kept with one timer for all of
 * them, armed at the soonest: a request that waits on storage pays a set
 * entry, not a timer of its own (a timer armed and cleared per request cost
 * ~190 ns of the ~270 ns a bound added to an awaited lookup in process). The
 * timer fires about once per bound's length while work is in flight (a
 * lookup's: its budget plus the grace, ~1 s), and then walks the work in
 * flight; an idle edge arms none.
 */
export class OverdueWatch {
  private readonly live = new Set<Watched>();
  private timer: unknown;
  /** When the timer fires (performance.now() ms); +Infinity when none is armed. */
  private armedAt = Number.POSITIVE_INFINITY;

  constructor(private readonly timers: BoundTimers = REAL_TIMERS) {}

  /** Watches work bounded at `at` (performance.now() ms): unless it `ended` before, `giveUp` runs then. */
  watch(at: number, giveUp: () => void): Watched {
    return this.add({ at, giveUp });
  }

  /** Watches `w` (an entry that carries its own state: no closure per piece of work); answers it. */
  add<W extends Watched>(w: W): W {
    this.live.add(w);
    if (w.at < this.armedAt) this.arm(w.at);
    return w;
  }

  /** The work ended: true, and it is no longer watched; false when it was given up before (its end changes nothing). */
  ended(w: Watched): boolean {
    return this.live.delete(w);
  }

  /** Work watched now. */
  get size(): number {
    return this.live.size;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.armedAt = at;
    this.timer = this.timers.set(at, this.sweep);
  }

  private readonly sweep = (): void => {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = this.timers.now();
    const due: Watched[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const w of this.live) {
      if (w.at <= now) due.push(w);
      else if (w.at < next) next = w.at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
    for (const w of due) this.live.delete(w);
    // Last: giving up releases slots, and a request admitted then may be watched (and arm the timer sooner).
    for (const w of due) w.giveUp();
  };
}
