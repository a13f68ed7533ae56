import type { LoopPressure } from "./loop-pressure.ts";

/**
 * A LoopPressure that can be set aside: while suspended every request
 * passes and the signal underneath hears nothing of it; resumed, it judges
 * requests as before. For the start-up warm-up (app.ts): the server's own
 * lookups, sent before it serves clients, to have its code compiled. They
 * run back to back in every loop turn by design, so on a busy or stalling
 * host their turns could run over the overload target for the signal's
 * interval and have it refuse the warm-up's own lookups (29 of 3,000 in a
 * full test run on a stalling host), which warms nothing and, left to the
 * signal, would carry an overload episode into the first client requests.
 */
export class SuspendablePressure implements LoopPressure {
  private suspended = false;

  constructor(private readonly inner: LoopPressure) {}

  /** Every request passes until `resume`. */
  suspend(): void {
    this.suspended = true;
  }

  resume(): void {
    this.suspended = false;
  }

  get isSuspended(): boolean {
    return this.suspended;
  }

  pass(now: number, inFlight?: number): boolean {
    return this.suspended || this.inner.pass(now, inFlight);
  }

  get overloaded(): boolean {
    return !this.suspended && this.inner.overloaded;
  }

  get lastTurnMs(): number {
    return this.inner.lastTurnMs;
  }

  get turnBudgetMs(): number {
    return this.inner.turnBudgetMs;
  }
}
