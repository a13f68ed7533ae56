import {
  BrokenCircuitError,
  type BulkheadPolicy,
  BulkheadRejectedError,
  bulkhead,
  CircuitState,
  circuitBreaker,
  DelegateBackoff,
  ExponentialBackoff,
  type FailureReason,
  handleWhen,
  type IBackoffFactory,
  type IHalfOpenAfterBackoffContext,
  type IPolicy,
  type IRetryBackoffContext,
  noJitterGenerator,
  retry,
  wrap,
} from "cockatiel";
import { CommonStallError, LocalStallError, ShardHungError, StalledTrialError, StorageError, StorageTimeoutError, WriteNotAcknowledgedError } from "../kv/storage-errors.ts";
import type { ResilienceSettings } from "./settings.ts";
import { WindowBreaker } from "./window-breaker.ts";

export type ShardOp = "read" | "write";
export type BreakerState = "closed" | "open" | "half_open";

/** What the policies report, for metrics and the anomaly buffer. Called off the hot path's success branch only. */
export interface ResilienceObserver {
  breakerChanged(shard: string, op: ShardOp, state: BreakerState): void;
  retried(shard: string, op: ShardOp): void;
  /** A call failed after its retries (or at once); `reason` is a stable code such as `storage_timeout` or `shard_breaker_open`. */
  failed(shard: string, op: ShardOp, reason: string): void;
}

export const IGNORE_OBSERVER: ResilienceObserver = { breakerChanged() {}, retried() {}, failed() {} };

/** A fault of the shard (retryable storage error), as opposed to a bad request, our own bug, our own stall (local-stall.ts) or one common to the shards (common-cause.ts). */
export const isShardFault = (e: Error): boolean => e instanceof StorageError && e.retryable && !(e instanceof LocalStallError) && !(e instanceof CommonStallError);

/** Retries never re-run a call the breaker or the bulkhead refused, nor a read of a shard found hung (ShardHungError). */
const isRetryable = (e: Error): boolean => isShardFault(e) && !(e instanceof BrokenCircuitError) && !(e instanceof BulkheadRejectedError) && !(e instanceof ShardHungError);

/**
 * A write failure that a failover ends (no primary known, the primary gone or
 * demoted: READONLY, MASTERDOWN, a refused connection), retried through the
 * failover window; as against a primary that is there and does not answer in
 * time, or replicas that do not confirm (timeouts), retried `writeRetries`
 * times. Every push to a hung shard took 21 s (14 attempts) when both were
 * retried through the window: the write breaker (10 s window) hardly opened,
 * and pushes held admission slots until lookups were refused.
 */
const isFailoverSign = (e: Error): boolean => isRetryable(e) && !(e instanceof StorageTimeoutError) && !(e instanceof WriteNotAcknowledgedError);
const isSlowWrite = (e: Error): boolean => isRetryable(e) && !isFailoverSign(e);

const STATE_NAMES: Record<number, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half_open",
  [CircuitState.Isolated]: "open",
};

/** One breaker and the policy stack around it. */
export interface GuardedOp {
  /** `wrap(bulkhead, breaker, retry)`: the whole stack. */
  readonly policy: IPolicy;
  /** The shard's bulkhead (shared by reads and writes): the first layer of `policy`. */
  readonly bulkhead: BulkheadPolicy;
  /** `wrap(breaker, retry)`: the stack below the bulkhead, for a call that already holds one of its slots. */
  readonly admitted: IPolicy;
  /**
   * True while the breaker would do nothing around a successful call: closed
   * and not on probation (cockatiel then calls only `WindowBreaker.success`,
   * a no-op in that state, and retry does nothing after a success).
   */
  idle(): boolean;
  /** Current state of the breaker, as reported (metrics, anomalies): half-open while on probation (trial calls after the first). */
  state(): BreakerState;
  /**
   * Is the call being made cockatiel's half-open trial? Only that one is
   * judged strictly (local-stall.ts): a stall during probation stays excused,
   * as the README's failure table says, rather than reopening a recovered shard.
   */
  isTrial(): boolean;
  /** True when the breaker is open and its open time is over: the next call through it would be the trial. */
  trialDue(): boolean;
  /** When an open breaker lets a trial through (ms from now; 0 when not open). */
  retryAfterMs(): number;
  /** Drops the failures the breaker counted within the last `withinMs` (a stall common to the shards caused them). */
  forgive(withinMs: number): void;
}

/** Read and write policies of one shard, and the retry-only policy for maintenance calls on the primary. */
export interface ShardPolicies {
  readonly read: GuardedOp;
  readonly write: GuardedOp;
  /** Retries through a failover window without a breaker: migration scans and authoritative reads. */
  readonly primary: IPolicy;
}

/** Retries needed for exponential back-off (capped at 1 s) to span `windowMs`. */
export function retriesToSpan(windowMs: number, firstMs: number, atLeast: number): number {
  let n = 0;
  let waited = 0;
  let delay = Math.max(1, firstMs);
  while (waited < windowMs && n < 1000) {
    waited += delay;
    delay = Math.min(delay * 2, 1000);
    n++;
  }
  return Math.max(atLeast, n);
}

/**
 * Builds a shard's policies: per op `wrap(bulkhead, circuitBreaker, retry)`
 * from cockatiel, with the timeout innermost done by the caller as a timer
 * race (see deadline.ts). The bulkhead is shared by reads and writes: it bounds
 * what one shard can hold of the process. `failoverWindowMs` is how long
 * writes keep retrying while the shard has no usable primary.
 */
export function shardPolicies(shard: string, s: ResilienceSettings, failoverWindowMs: number, observer: ResilienceObserver, clock: () => number = Date.now): ShardPolicies {
  const shared = bulkhead(s.bulkheadConcurrency, s.bulkheadQueue);
  // A trial lost to a stall that was not the shard's reopens the breaker briefly; anything else for the full open time.
  const openTime = (reason: FailureReason<unknown> | { readonly isolated: true }): number => ("error" in reason && reason.error instanceof StalledTrialError ? s.breakerRetrialMs : s.breakerOpenMs);
  const openFor = new DelegateBackoff<IHalfOpenAfterBackoffContext>((ctx) => openTime(ctx.result));
  const retrying = (op: ShardOp, when: (e: Error) => boolean, retries: number, backoff: IBackoffFactory<IRetryBackoffContext<unknown>>): IPolicy => {
    const again = retry(handleWhen(when), { maxAttempts: retries, backoff });
    again.onRetry(() => observer.retried(shard, op));
    return again;
  };
  const guard = (op: ShardOp, again: IPolicy): GuardedOp => {
    // Probation (the trial calls after the first) is half-open to the outside: cockatiel says closed, the
    // metric and the anomalies say half-open until the last trial call succeeds. They said closed after one.
    const strategy = new WindowBreaker(s.breakerFailures, s.breakerWindowMs, s.breakerTrials, clock, () => observer.breakerChanged(shard, op, "closed"));
    const breaker = circuitBreaker(handleWhen(isShardFault), { halfOpenAfter: openFor, breaker: strategy });
    breaker.onStateChange((state) => {
      if (state === CircuitState.Closed && strategy.trialsLeft > 0) return;
      observer.breakerChanged(shard, op, STATE_NAMES[state] ?? "open");
    });
    // While half-open, cockatiel holds every other call until the trial ends (`await state.test`), then runs it: writes
    // waited out the trial's whole retry (~1.7 s) holding admission and bulkhead slots (19 pushes answered after
    // 1,710 ms, 30 lookups of healthy shards refused meanwhile), and reads waited out their budgets, then ran their
    // first attempt past their deadline, failed on probation and reopened a recovered shard. Only the trial goes
    // through: every other call fails at once, as while open.
    const gated: IPolicy = {
      _altReturn: undefined as never,
      onSuccess: breaker.onSuccess,
      onFailure: breaker.onFailure,
      execute: (fn, signal) => (breaker.state === CircuitState.HalfOpen ? Promise.reject(new BrokenCircuitError()) : breaker.execute(fn, signal)),
    };
    let openedAt = 0;
    let openMs = s.breakerOpenMs;
    breaker.onBreak((reason) => {
      openedAt = Date.now();
      openMs = openTime(reason);
    });
    return {
      policy: wrap(shared, gated, again),
      bulkhead: shared,
      admitted: wrap(gated, again),
      idle: () => breaker.state === CircuitState.Closed && strategy.trialsLeft === 0,
      state: () => (breaker.state === CircuitState.Closed && strategy.trialsLeft > 0 ? "half_open" : (STATE_NAMES[breaker.state] ?? "open")),
      isTrial: () => breaker.state === CircuitState.HalfOpen,
      // cockatiel times the open state with Date.now(); so does this.
      trialDue: () => breaker.state === CircuitState.Open && Date.now() - openedAt >= openMs,
      retryAfterMs: () => (breaker.state === CircuitState.Open ? Math.max(0, openedAt + openMs - Date.now()) : 0),
      forgive: (withinMs) => strategy.forgive(withinMs),
    };
  };
  const readDelay = s.readRetryDelayMs;
  const failoverRetries = retriesToSpan(failoverWindowMs, s.writeBackoffMs, s.writeRetries);
  const writeBackoff = new ExponentialBackoff({ initialDelay: s.writeBackoffMs, maxDelay: 1000, generator: noJitterGenerator });
  const primary = retry(handleWhen(isRetryable), { maxAttempts: failoverRetries, backoff: writeBackoff });
  return {
    // First retry at once (another member), later ones after `readRetryDelayMs`.
    read: guard("read", retrying("read", isRetryable, s.readRetries, new DelegateBackoff<IRetryBackoffContext<unknown>>((ctx) => (ctx.attempt <= 1 ? 0 : readDelay)))),
    // Through the failover window while a failover is what failed the write; `writeRetries` times when the primary is slow.
    write: guard("write", wrap(retrying("write", isFailoverSign, failoverRetries, writeBackoff), retrying("write", isSlowWrite, s.writeRetries, writeBackoff))),
    primary,
  };
}
