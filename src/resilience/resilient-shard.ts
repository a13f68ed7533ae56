import { BrokenCircuitError, BulkheadRejectedError, type IPolicy } from "cockatiel";
import type { KvEntry, KvNode, NodeHealth, PrimaryAccess, ProcessScanPage, PutOutcome, ReadContext, ReadSlot, ScanPage, ServerProcess } from "../kv/kv-node.ts";
import { neverNow } from "../kv/kv-node.ts";
import {
  BudgetSpentError,
  CallerDeadlineError,
  CommonStallError,
  LocalStallError,
  raceDeadline,
  sentNothing,
  ShardBreakerOpenError,
  ShardSaturatedError,
  StalledTrialError,
  StorageError,
  StorageTimeoutError,
} from "../kv/storage-errors.ts";
import { judgeTimeout, LATENESS_JUDGE, type StallJudge } from "./local-stall.ts";
import { type BreakerState, type GuardedOp, isShardFault, type ResilienceObserver, type ShardOp, type ShardPolicies } from "./shard-policies.ts";
import type { ResilienceSettings } from "./settings.ts";

/** What a shard offers below its policies: a KvNode plus the primary-only calls rebalancing needs. */
export interface ShardNode extends KvNode, PrimaryAccess {
  /**
   * True when `getMany` with a `ctx.deadline` always settles by that deadline
   * on its own (a replica set races each attempt against what is left of it).
   * The policies then add no timer of their own to a first attempt: they bound
   * only the waits they add (bulkhead queue, retries, back-off).
   */
  readonly readsSettleByDeadline: boolean;
}

/** Breaker states of a shard, for /readyz, /metrics and the health score. */
export interface ShardGuardState {
  readonly shard: string;
  readonly read: BreakerState;
  readonly write: BreakerState;
}

/**
 * A shard behind its policies, as the ring sees it. Reads run
 * `wrap(bulkhead, breaker, retry)` around one replica-set attempt each, and
 * are bounded by the request's deadline (or `requestTimeoutMs`): a shard that
 * cannot answer in time fails the call with a typed error, which the ring
 * turns into UNAVAILABLE slots for this shard's keys only — never a late
 * answer. While the read breaker is open a read fails in microseconds without
 * I/O. Writes run the write policy (retries with exponential back-off through
 * the failover window, each attempt bounded by `writeTimeoutMs`); an open
 * write breaker fails them at once with `ShardBreakerOpenError` (503 +
 * Retry-After at the edge).
 *
 * Fast path (inner nodes whose reads settle by the deadline, i.e. replica
 * sets): while the breaker is idle (closed, not on probation) and the bulkhead
 * has a free slot, a read takes the slot through cockatiel's bulkhead and runs
 * its first attempt directly, with no timer of its own (the replica set's
 * attempt timer already ends it by the deadline). On success the skipped
 * breaker and retry layers would have done nothing (see `GuardedOp.idle`). On
 * failure the error is handed, in the same slot, to cockatiel's
 * `wrap(breaker, retry)` as the outcome of attempt 0: the retries (1st at once,
 * then after `readRetryDelayMs`), the breaker's count and the deadline race
 * then run as on the full path. Two differences, both on failure only: the
 * breaker is consulted when the first attempt has failed, not before it (if
 * it opened meanwhile the read fails with `ShardBreakerOpenError` without
 * retrying), and a read given up at its deadline frees its slot then (its
 * remaining retries check the deadline first and do no I/O).
 * Measured with Bun 1.4 against a resolved stub, 32 concurrent: the full path
 * costs ~2.5 µs per read (four async layers, a closure, a timer race) — a
 * quarter of a Redis lookup's CPU, ratio 0.69–0.82 in the resilience bench —
 * the fast path ~0.1–0.25 µs (the bulkhead's async frame and one `then`).
 * Otherwise (breaker open, half-open or on probation, bulkhead full, no
 * deadline, an inner node without its own bound) reads take the full stack
 * raced against the deadline.
 *
 * Every timeout passes the `StallJudge` before the policies see it: one this
 * process caused (its loop overloaded, the timer fired late) fails its call
 * as `LocalStallError`, one most shards shared as `CommonStallError`; the
 * breaker counts neither and the retry repeats neither (local-stall.ts,
 * common-cause.ts).
 */
export class ResilientShard implements ShardNode {
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  /** The ring's reads settle by the deadline: the fast path's inner attempt or the full path's race. */
  readonly readsSettleByDeadline = true;
  readonly id: string;
  /** Chosen once: the fast path needs an inner node that bounds its own reads. */
  readonly getMany: (keys: readonly string[], ctx?: ReadContext) => Promise<ReadSlot[]>;

  constructor(
    private readonly inner: ShardNode,
    private readonly policies: ShardPolicies,
    private readonly settings: ResilienceSettings,
    private readonly observer: ResilienceObserver,
    /** Bound on one write attempt: `writeTimeoutMs` plus the replicas' WAIT timeout. */
    private readonly writeAttemptMs: number = settings.writeTimeoutMs,
    /** Decides which timeouts this process caused (not counted against the shard). */
    private readonly judge: StallJudge = LATENESS_JUDGE,
  ) {
    this.id = inner.id;
    this.getMany = inner.readsSettleByDeadline ? this.readFast : this.readGuarded;
  }

  guardState(): ShardGuardState {
    return { shard: this.id, read: this.policies.read.state(), write: this.policies.write.state() };
  }

  private readonly readFast = (keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> => {
    if (ctx?.fromPrimary === true) return this.getManyPrimary(keys, ctx.signal);
    const read = this.policies.read;
    const deadline = ctx?.deadline;
    if (keys.length > 0 && deadline !== undefined && deadline <= performance.now()) return this.budgetSpent();
    if (keys.length === 0 || deadline === undefined || !read.idle() || read.bulkhead.executionSlots === 0) return this.readGuarded(keys, ctx);
    // A free slot: the bulkhead runs this at once (no queue wait to bound).
    return read.bulkhead.execute(() => this.inner.getMany(keys, ctx).then(this.answered, (error: unknown) => this.afterFirstFailure(keys, ctx, deadline, error)));
  };

  /** A read answered: the judge hears of it (a stretch of timeouts across shards has ended: common-cause.ts). */
  private readonly answered = (rows: ReadSlot[]): ReadSlot[] => {
    this.judge.answered?.(this.id);
    return rows;
  };

  /**
   * The caller's budget was spent before the read began (the lookup waited
   * for an admission slot): nothing is read, the rows are UNAVAILABLE at once,
   * and it is not the shard's fault, nor reported as its failure (the ring
   * does not name it in `degraded` either). It was read anyway and the
   * timeout filed against the shard: with shedding off, a healthy shard's
   * breaker opened; then it was reported as the shard's local_stall.
   */
  private budgetSpent(): Promise<never> {
    return Promise.reject(new BudgetSpentError(this.id));
  }

  /** The fast path's first attempt failed: the breaker and retry layers take over with that outcome, inside the same bulkhead slot. */
  private afterFirstFailure(keys: readonly string[], ctx: ReadContext | undefined, deadline: number, error: unknown): Promise<ReadSlot[]> {
    return this.raced(this.policies.read.admitted, keys, ctx, deadline, deadline - performance.now(), { error: this.judged("read", error) });
  }

  /**
   * `error` as the policies see it: a timeout the judge excuses becomes its
   * excused kind (local-stall.ts, common-cause.ts). A stall common to the
   * shards also takes back the failures this shard counted within it (its
   * first timeout came before any other shard's, when nothing was correlated
   * yet), whether its later timeouts were blamed on the stall or on this process.
   */
  private judged(op: ShardOp, error: unknown): unknown {
    const guard = this.policies[op];
    const out = judgeTimeout(this.judge, error, { shard: this.id, trial: guard.isTrial() });
    if ((out instanceof CommonStallError || out instanceof LocalStallError) && out.spanMs > 0) guard.forgive(out.spanMs);
    return out;
  }

  /** The same for a write attempt (its own breaker's state). */
  private readonly rethrowJudgedWrite = (error: unknown): never => {
    throw this.judged("write", error);
  };

  /** The full stack raced against the deadline. */
  private readonly readGuarded = (keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> => {
    // A read of the primary alone (the vector indexes' re-reads) goes through the primary's policy, not the read
    // breaker: a primary down while its replicas serve opened the breaker for every lookup the replicas could answer.
    if (ctx?.fromPrimary === true) return this.getManyPrimary(keys, ctx.signal);
    if (keys.length === 0) return Promise.resolve([]);
    const started = performance.now();
    if (ctx?.deadline !== undefined && ctx.deadline <= started) return this.budgetSpent();
    const deadline = ctx?.deadline ?? started + this.settings.requestTimeoutMs;
    // Less than a full attempt left is never the breaker's trial: on a healthy shard it would time out and reopen the
    // breaker for everyone (a client's x-quiver-timeout-ms: 1 did). Refused as while open, not counted.
    if (deadline - started < this.settings.readAttemptTimeoutMs && this.policies.read.trialDue()) return Promise.reject(this.failed("read", this.policies.read, new BrokenCircuitError()));
    // The replica set sizes its attempts from the deadline: give it one when the caller did not.
    const innerCtx: ReadContext = ctx?.deadline !== undefined ? ctx : { ...ctx, deadline };
    return this.raced(this.policies.read.policy, keys, innerCtx, deadline, deadline - started, null);
  };

  /**
   * `policy` around the attempts, raced against the deadline. With `first`,
   * attempt 0 already ran (the fast path) and failed: the policy gets that
   * outcome as its attempt 0, so retries and the breaker's count follow as if
   * it had run it.
   */
  private raced(policy: IPolicy, keys: readonly string[], ctx: ReadContext | undefined, deadline: number, budget: number, first: { readonly error: unknown } | null): Promise<ReadSlot[]> {
    const inner = this.inner;
    const guard = this.policies.read;
    const attemptMs = this.settings.readAttemptTimeoutMs;
    // The call's first shard fault: what the breaker counts for the call if the caller's deadline ends a later attempt
    // (a hung shard's lookup: two full attempts time out, the third is cut). With none, the call is not the shard's fault.
    let fault: unknown;
    // An attempt the caller's deadline ended (or would end): the call's shard fault if it had one; else not the shard's,
    // except on the breaker's trial, which must not pass by it (cockatiel closes the breaker on an error it does not
    // count): it reopens the breaker for the short retrial time, as a trial lost to a stall does.
    const callerGone = (timeout: StorageTimeoutError): unknown =>
      fault ?? (guard.isTrial() ? new StalledTrialError(timeout, "the caller had less than readAttemptTimeoutMs left") : new CallerDeadlineError(timeout));
    // What the policies see of a failed attempt (already judged).
    const settle = (out: unknown): unknown => {
      if (out instanceof CallerDeadlineError) return callerGone(out.cause as StorageTimeoutError);
      if (fault === undefined && out instanceof Error && isShardFault(out)) fault = out;
      return out;
    };
    const failedAttempt = (error: unknown): never => {
      throw settle(this.judged("read", error));
    };
    const firstOutcome = first === null ? undefined : settle(first.error);
    const attempt = (c: { attempt: number }): Promise<ReadSlot[]> => {
      if (c.attempt === 0 && first !== null) return Promise.reject(firstOutcome);
      const left = deadline - performance.now();
      // Too little time left for a full attempt: no I/O when the caller is gone (its deadline passed while this call
      // waited in the bulkhead queue or a back-off); none either for a trial, which could not tell a healthy shard.
      // Such a call is refused before it becomes the trial (readGuarded); this catches one that waited meanwhile.
      if (left <= 0 || (left < attemptMs && guard.isTrial())) return Promise.reject(callerGone(this.timeout("read", Math.max(0, left), 0)));
      return inner.getMany(keys, ctx).then(this.answered, failedAttempt);
    };
    // Each timeout is judged once, where it is made: an attempt's in failedAttempt (the policy passes it on
    // as judged), the deadline's here. Judged again, a timeout the breaker had counted could come out excused.
    // The deadline's timeout is the caller's own when no attempt of the call failed the shard's way and either the whole
    // call had less than a full attempt or the inner node bounds its attempts itself (they end with their own verdicts).
    const callersOwn = budget < attemptMs || inner.readsSettleByDeadline;
    const atDeadline = (late: number): Error => (fault === undefined && callersOwn ? new CallerDeadlineError(this.timeout("read", budget, late)) : (this.judged("read", this.timeout("read", budget, late)) as Error));
    return raceDeadline(policy.execute(attempt as (c: unknown) => Promise<ReadSlot[]>), budget, atDeadline).then(undefined, (error: unknown) => {
      throw this.failed("read", guard, error);
    });
  }

  /**
   * The write policy around attempts on the inner node. A write that fails
   * says whether it may have landed (StorageError.sent): it sent nothing when
   * the breaker or the bulkhead refused it (before any attempt) or when every
   * attempt was refused that way by the inner node (no primary known); an
   * attempt that timed out or failed otherwise may have landed, and the call's
   * error then says so even when a later attempt was refused (its error is
   * wrapped with the same code, sent "maybe").
   */
  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return { written: 0, ignored: 0, sameTime: 0 };
    const limit = this.writeAttemptMs;
    let reached = false;
    const attempt = async (): Promise<PutOutcome> => {
      try {
        return await raceDeadline(this.inner.putMany(entries, signal), limit, (late) => this.timeout("write", limit, late));
      } catch (error) {
        if (!sentNothing(error)) reached = true;
        throw this.judged("write", error);
      }
    };
    try {
      return await this.policies.write.policy.execute(attempt);
    } catch (error) {
      const out = this.failed("write", this.policies.write, error);
      // The refusal's own code and flags (the edges answer as they did for it: failover_in_progress stays that), sent "maybe".
      if (reached && out instanceof StorageError && out.sent === "nothing") {
        throw new StorageError(out.code, `${this.id}: write failed after an attempt that may have landed (last: ${out.message})`, out.retryable, out);
      }
      throw out;
    }
  }

  /** Deletes are writes: the same policy, breaker included. */
  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return 0;
    try {
      return await this.policies.write.policy.execute(() => this.inner.deleteMany(keys, signal).then(undefined, this.rethrowJudgedWrite));
    } catch (error) {
      throw this.failed("write", this.policies.write, error);
    }
  }

  /** Rebalancing's authoritative read: retried through a failover, no breaker (it runs in the background). */
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]> {
    return this.policies.primary.execute(() => this.inner.getManyPrimary(keys, signal));
  }

  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]> {
    return this.policies.primary.execute(() => this.inner.deleteIfNotNewer(items, signal));
  }

  size(): Promise<number> {
    return this.policies.primary.execute(() => this.inner.size());
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.policies.primary.execute(() => this.inner.scan(cursor, count, prefix));
  }

  scanPrimary(cursor: string, count: number): Promise<ProcessScanPage> {
    return this.policies.primary.execute(() => this.inner.scanPrimary(cursor, count));
  }

  primaryProcess(): Promise<ServerProcess> {
    return this.policies.primary.execute(() => this.inner.primaryProcess());
  }

  /** The replica set's health, with the breaker states (an open read breaker makes the shard not ok). */
  async health(): Promise<NodeHealth> {
    const h = await this.inner.health();
    const g = this.guardState();
    return { id: h.id, ok: h.ok && g.read !== "open", detail: { ...h.detail, breakers: { read: g.read, write: g.write } } };
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private timeout(op: ShardOp, ms: number, lateMs: number): StorageTimeoutError {
    return new StorageTimeoutError(`shard ${this.id} ${op}`, Math.round(ms), lateMs);
  }

  /** Maps policy refusals to typed storage errors and reports the failure. */
  private failed(op: ShardOp, guard: GuardedOp, error: unknown): unknown {
    let out = error;
    if (error instanceof BrokenCircuitError) out = new ShardBreakerOpenError(this.id, op, guard.retryAfterMs());
    else if (error instanceof BulkheadRejectedError) out = new ShardSaturatedError(this.id);
    this.observer.failed(this.id, op, out instanceof StorageError ? out.code : "error");
    return out;
  }
}
