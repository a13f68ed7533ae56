import { CommonStallError, LocalStallError, StalledTrialError, StorageTimeoutError } from "../kv/storage-errors.ts";
import type { LoopLag } from "./loop-lag.ts";
import type { LoopPressure } from "./loop-pressure.ts";

/**
 * Whose fault is a storage timeout? A shard call's timer measures the wall
 * time until this process *handles* the answer, not until the answer arrives:
 * when the process is CPU-overloaded, the event loop runs long turns, and a
 * reply that reached the socket in 1 ms is read only after the turn, or the
 * timer fires first. Counted against the shard, such timeouts open every
 * shard's breaker at once (measured: 3x overload of 100-entity lookups on 3
 * healthy Redis shards opened all three read breakers within a second, and
 * every lookup then answered defaults for the breakers' 30 s), turning a pod
 * overload into a storage outage of its own making.
 *
 * A judge decides, for each timeout, whether the process was stalled. Such a
 * timeout still fails its call (the budget is spent either way), as
 * `LocalStallError`: the breaker does not count it, the retry does not repeat
 * it, metrics report it as `local_stall`.
 */
export interface StallJudge {
  /**
   * Who, other than the shard called, is to blame for `timeout`, and why;
   * null when it is the shard's. `call` names the shard (judges that compare
   * shards need it; the process-local one does not).
   */
  stalled(timeout: StorageTimeoutError, call?: TimedOutCall): StallVerdict | null;
  /**
   * A read of `shard` answered (shards call it on every read that did):
   * judges that follow a shard's stretch of timeouts learn it has ended.
   * Judges that need it not leave it out.
   */
  answered?(shard?: string): void;
}

/** The call that timed out, for judges that compare shards. */
export interface TimedOutCall {
  readonly shard: string;
  /** A breaker's trial call (its breaker half-open): never excused (judgeTimeout). */
  readonly trial: boolean;
}

/** A timeout that is not the shard's fault: this process stalled (`local`), or most shards timed out together (`common`). */
export interface StallVerdict {
  readonly cause: "local" | "common";
  readonly why: string;
  /** How far back (ms) the stretch of correlated timeouts it falls in reaches (`common`, and `local` within such a stretch). */
  readonly spanMs?: number;
}

const local = (why: string): StallVerdict => ({ cause: "local", why });

/** A timer firing later than this share of its budget (and than LATE_FLOOR_MS) means the loop was blocked. */
const LATE_SHARE = 0.25;
/** Timers on an idle loop fire within ~1 ms; a busy but healthy one within a few. */
const LATE_FLOOR_MS = 5;
/** A loop turn longer than this share of the budget kept the process from reading replies in time. */
const TURN_SHARE = 0.5;

/** The lateness rule alone, for callers without the loop's view (a replica set judging its member). */
export function firedLate(budgetMs: number, lateMs: number): boolean {
  return lateMs > Math.max(LATE_FLOOR_MS, budgetMs * LATE_SHARE);
}

/**
 * Blames the process when the timer fired late; with the loop's views (as
 * the server wires them) also when the loop is in a CPU overload episode, its
 * last turn of requests ran over half the budget, or the lag probe saw the
 * loop more than a quarter of the budget late recently. Consulted on
 * timeouts only: nothing on the success path.
 */
export class LoopStallJudge implements StallJudge {
  constructor(
    private readonly loop?: Pick<LoopPressure, "overloaded" | "lastTurnMs">,
    private readonly lag?: LoopLag,
  ) {}

  stalled(timeout: StorageTimeoutError): StallVerdict | null {
    const budget = timeout.budgetMs;
    if (firedLate(budget, timeout.lateMs)) return local(`its timer fired ${Math.round(timeout.lateMs)} ms late`);
    const loop = this.loop;
    if (loop?.overloaded === true) return local("event loop overloaded");
    if (loop !== undefined && loop.lastTurnMs > budget * TURN_SHARE) return local(`event loop turn of ${Math.round(loop.lastTurnMs)} ms`);
    const lag = this.lag?.recentMaxMs() ?? 0;
    if (firedLate(budget, lag)) return local(`event loop ${Math.round(lag)} ms behind`);
    return null;
  }
}

/** The default: lateness only. */
export const LATENESS_JUDGE: StallJudge = new LoopStallJudge();

/**
 * `error` as the caller should see it: a timeout the judge blames on the
 * process becomes `LocalStallError`, one it blames on a cause common to the
 * shards `CommonStallError`; a breaker's trial that either excuses becomes
 * `StalledTrialError`.
 */
export function judgeTimeout(judge: StallJudge, error: unknown, call?: TimedOutCall): unknown {
  if (!(error instanceof StorageTimeoutError)) return error;
  const verdict = judge.stalled(error, call);
  if (verdict === null) return error;
  // A breaker's trial is never excused: cockatiel takes an error its breaker does not handle as a passed trial and
  // closes the breaker, so an excused timeout would close it on a shard that never answered, and while the process
  // stays overloaded every later timeout is excused too: it would never reopen. The breaker counts it and reopens,
  // for the short retrial time (shard-policies.ts): the trial said nothing about the shard.
  if (call?.trial === true) return new StalledTrialError(error, verdict.cause === "local" ? `this process was stalled (${verdict.why})` : `most shards timed out together (${verdict.why})`);
  return verdict.cause === "local" ? new LocalStallError(error, verdict.why, verdict.spanMs) : new CommonStallError(error, verdict.why, verdict.spanMs);
}
