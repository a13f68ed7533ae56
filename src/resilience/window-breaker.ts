import { CircuitState, type IBreaker } from "cockatiel";

/**
 * cockatiel breaker strategy: opens after `failures` failed calls within
 * `windowMs` (a ring of the last failure times: O(1) per call), and after a
 * half-open trial succeeds keeps the circuit on probation for `trials` calls
 * in total: one failure among them reopens it at once. (cockatiel lets one
 * trial through while half-open; the probation gives the "3 trial requests"
 * of the design without replacing its state machine.)
 */
export class WindowBreaker implements IBreaker {
  private readonly times: Float64Array;
  private next = 0;
  private probation = 0;

  constructor(
    failures: number,
    private readonly windowMs: number,
    private readonly trials: number,
    private readonly clock: () => number = Date.now,
    /** Called when the last call on probation succeeds: the circuit is fully closed. */
    private readonly probationEnded: () => void = () => {},
  ) {
    if (!(failures >= 1)) throw new Error(`breakerFailures: expected at least 1, got ${failures}`);
    this.times = new Float64Array(failures).fill(Number.NEGATIVE_INFINITY);
  }

  /** Calls left on probation after a half-open success (0 when fully closed). */
  get trialsLeft(): number {
    return this.probation;
  }

  get state(): unknown {
    return { times: [...this.times], next: this.next, probation: this.probation };
  }

  set state(value: unknown) {
    const v = value as { times: number[]; next: number; probation: number };
    this.times.set(v.times.slice(0, this.times.length));
    this.next = v.next % this.times.length;
    this.probation = v.probation;
  }

  /**
   * Drops the failures counted within the last `withinMs` (they leave holes
   * in the ring, which count as failures long past): a stall common to the
   * shards caused them (common-cause.ts). Probation is untouched.
   */
  forgive(withinMs: number): void {
    const from = this.clock() - withinMs;
    const times = this.times;
    for (let i = 0; i < times.length; i++) if (times[i]! >= from) times[i] = Number.NEGATIVE_INFINITY;
  }

  success(state: CircuitState): void {
    if (state === CircuitState.HalfOpen) {
      this.times.fill(Number.NEGATIVE_INFINITY);
      this.probation = this.trials - 1;
    } else if (this.probation > 0) {
      if (--this.probation === 0) this.probationEnded();
    }
  }

  failure(state: CircuitState): boolean {
    if (state === CircuitState.HalfOpen) return true;
    if (this.probation > 0) {
      this.probation = 0;
      return true;
    }
    const now = this.clock();
    this.times[this.next] = now;
    this.next = (this.next + 1) % this.times.length;
    // `next` now points at the oldest of the last `failures` failure times.
    if (now - this.times[this.next]! <= this.windowMs) {
      this.times.fill(Number.NEGATIVE_INFINITY);
      return true;
    }
    return false;
  }
}
