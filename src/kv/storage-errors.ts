import { QuiverError } from "../errors/quiver-error.ts";
import type { KvEntry } from "./kv-node.ts";

/**
 * What a failed storage call may have done: `"nothing"` when it was refused
 * before anything was sent (a breaker open, a bulkhead full, the caller's
 * budget spent, no primary known, this server's ring stale): a write refused
 * so changed no stored row. `"maybe"` otherwise: a timeout, a connection lost
 * after the command went out, an error of unknown origin.
 */
export type Sent = "nothing" | "maybe";

/**
 * Errors the storage layer raises. They are QuiverErrors (kind `unavailable`,
 * a stable `code`, `retryable`) so each edge maps them (HTTP 503 + Retry-After,
 * gRPC UNAVAILABLE) without knowing which node raised them.
 */
export class StorageError extends QuiverError {
  /** Whether the call may have reached storage (`Sent`); a write's caches and change feed react only when it may have. */
  readonly sent: Sent;

  constructor(code: string, message: string, retryable: boolean, cause?: unknown, sent: Sent = "maybe") {
    super("unavailable", code, message, { retryable, cause });
    this.name = new.target.name;
    this.sent = sent;
  }
}

/** True when `error` says its call was refused before anything was sent (StorageError.sent); an error of any other kind may have landed. */
export function sentNothing(error: unknown): boolean {
  return error instanceof StorageError && error.sent === "nothing";
}

/**
 * A write to several nodes (the ring's one batch per shard) that failed on at
 * least one of them. It keeps the failure's kind, code, message, `retryable`
 * and Retry-After (the edges answer as they did for the failure itself: 503 +
 * Retry-After) and names the entries that may be stored: the shares written
 * and those that failed after being sent or in a way not known. The shares
 * refused before anything was sent (`sentNothing`) are left out: nothing
 * changed for their keys, so caches keep their copies of them and the change
 * feed does not announce them (storeMayHold).
 */
export class StoreWriteError extends QuiverError {
  /** The entries of the write that may be stored (the failed call's own array when every share may have landed). */
  readonly mayHaveLanded: readonly KvEntry[];
  /** The failure's own (an open breaker's), for the Retry-After header (api/http/error-status.ts). */
  readonly retryAfterSeconds: number | undefined;

  constructor(failure: unknown, mayHaveLanded: readonly KvEntry[]) {
    const known = failure instanceof QuiverError && failure.retryable ? failure : undefined;
    const message = known?.message ?? `storage write failed: ${(failure as { message?: string } | undefined)?.message ?? String(failure)}`;
    super(known?.kind ?? "unavailable", known?.code ?? "unavailable", message, { retryable: true, cause: failure });
    this.name = "StoreWriteError";
    this.mayHaveLanded = mayHaveLanded;
    const after = (failure as { retryAfterSeconds?: unknown } | null | undefined)?.retryAfterSeconds;
    this.retryAfterSeconds = typeof after === "number" ? after : undefined;
  }
}

/**
 * The entries of a failed write (`entries`, the call's argument) that the
 * store may hold now: those a StoreWriteError names, none when the call was
 * refused before anything was sent, else all of them (what is not known may
 * have landed). Caches drop and floor only these; the change feed publishes
 * only these.
 */
export function storeMayHold(error: unknown, entries: readonly KvEntry[]): readonly KvEntry[] {
  if (error instanceof StoreWriteError) return error.mayHaveLanded;
  return sentNothing(error) ? [] : entries;
}

/** A storage call did not answer within its deadline (or its request was aborted). */
export class StorageTimeoutError extends StorageError {
  /** The wait's budget (ms). */
  readonly budgetMs: number;
  /**
   * How long after it was due the timer that ended the wait fired (ms). Large
   * when this process was too busy to run it: the answer may have been waiting
   * in the socket all along (see resilience/local-stall.ts).
   */
  readonly lateMs: number;

  constructor(what: string, ms: number, lateMs = 0) {
    super("storage_timeout", `${what} did not answer within ${ms} ms`, true);
    this.budgetMs = ms;
    this.lateMs = lateMs;
  }
}

/**
 * A read attempt given the longest any read waits for a member
 * (`readAttemptMaxMs`) timed out on the shard's last healthy member: the shard
 * is hung, not slow. Counted against the shard like any timeout, but not
 * retried: a long-budget lookup retried the hung member twice more, holding
 * its admission slot 3 s, while the breaker counted nothing until calls ended
 * (an audit: every lookup of a healthy shard refused for 2.5 s).
 */
export class ShardHungError extends StorageTimeoutError {}

/**
 * A storage wait ran out while this process itself was stalled (its event
 * loop overloaded, or the timer fired well after it was due), so the shard may
 * have answered in time unheard. The caller gets what a timeout gives
 * (UNAVAILABLE rows, 503 for a write), but it is not the shard's fault: the
 * breaker does not count it and it is not retried (more work for a process
 * that is already behind).
 */
export class LocalStallError extends StorageError {
  /**
   * When most shards were timing out too (resilience/common-cause.ts): how far back (ms) that
   * stretch reaches, so the shard's failures counted within it are taken back as a common stall's are; 0 otherwise.
   */
  readonly spanMs: number;

  constructor(timeout: StorageTimeoutError, why: string, spanMs = 0) {
    super("local_stall", `${timeout.message}, but this process was stalled (${why}): not counted against the shard`, true, timeout);
    this.spanMs = spanMs;
  }
}

/**
 * A storage wait ran out while most shards timed out together (resilience/
 * common-cause.ts): something they share was slow (the host or network they
 * run on, a neighbour starving them), not this shard. Treated as a local
 * stall is: the caller gets what a timeout gives, the breaker does not count
 * it, it is not retried.
 */
export class CommonStallError extends StorageError {
  /** How far back (ms) the stretch of correlated timeouts reaches: the shard's failures within it were the stall's too. */
  readonly spanMs: number;

  constructor(timeout: StorageTimeoutError, why: string, spanMs = 0) {
    super("common_stall", `${timeout.message}, but most shards timed out together (${why}): not counted against the shard`, true, timeout);
    this.spanMs = spanMs;
  }
}

/**
 * A breaker's trial call timed out while the process was stalled or most
 * shards timed out together: the trial told nothing about the shard. It must
 * not close the breaker (cockatiel takes an error its breaker does not handle
 * as a passed trial), so the breaker counts it and reopens, but only for
 * `breakerRetrialMs` (shard-policies.ts), not its whole open time: a shard
 * that had recovered is tried again soon.
 */
export class StalledTrialError extends StorageError {
  constructor(timeout: StorageTimeoutError, why: string) {
    super("stalled_trial", `${timeout.message} on a breaker's trial, while ${why}: the trial is repeated soon`, true, timeout);
  }
}

/**
 * A read attempt ended by the caller's own deadline before it had
 * `readAttemptTimeoutMs`: the caller asked for less time than a healthy shard
 * may take (`x-quiver-timeout-ms: 1`, a short gRPC deadline), or had spent its
 * budget waiting. Its rows are UNAVAILABLE as for any timeout, but it says
 * nothing about the shard: the breaker does not count it, the retry does not
 * repeat it (no time is left), the member is not marked failed. Counted as
 * timeouts, five such lookups opened a healthy shard's read breaker for every
 * client for 30 s (an audit, 12-07).
 */
export class CallerDeadlineError extends StorageError {
  constructor(timeout: StorageTimeoutError) {
    super("caller_deadline", `${timeout.message}: the caller's deadline ended it before a full attempt, not counted against the shard`, false, timeout);
  }
}

/**
 * A read whose caller's budget was spent before storage was asked (the
 * lookup waited in the admission queue past it): nothing is read, its rows
 * are UNAVAILABLE, and no shard is at fault: it is not counted or reported
 * as the shard's failure, and the ring does not name the shard in `degraded`.
 * It was reported as a degraded read of the shard (`x-quiver-degraded`, a
 * `local_stall` failure and anomaly) though the shard was never asked.
 */
export class BudgetSpentError extends StorageError {
  constructor(shard: string) {
    super("budget_spent", `${shard}: the lookup's budget was spent before storage was asked (waiting for a slot)`, false, undefined, "nothing");
  }
}

/**
 * A scan page was answered by another server process than the one that issued
 * its cursor: the shard's primary failed over or restarted since the scan
 * began. A Redis SCAN cursor means something only to the process that issued
 * it (its hash seed and table size), so going on would skip keys silently;
 * the page is not given. The same cursor never works again (not retryable, not
 * the shard's fault): the caller starts its whole scan again from "0"
 * (`scanPasses`). Code `scan_restart`.
 */
export class ScanRestartError extends StorageError {
  /** The node (address) whose scan it was. */
  readonly node: string;
  /** The `run_id` of the process that issued the cursor; undefined when the cursor named none. */
  readonly issuedBy: string | undefined;
  /** The `run_id` of the process that answered the page. */
  readonly answeredBy: string;

  /** `why`, when given, is the whole reason instead (a cursor begun before a migration switched the ring: read-through-node.ts). */
  constructor(node: string, issuedBy: string | undefined, answeredBy: string, why?: string) {
    const from = issuedBy === undefined ? "a cursor that names no process" : `a cursor of process ${issuedBy.slice(0, 12)}`;
    super("scan_restart", `${node}: ${why ?? `scan page asked with ${from}, answered by process ${answeredBy.slice(0, 12)} (a failover or a restart)`}: start the scan again from the start`, false);
    this.node = node;
    this.issuedBy = issuedBy;
    this.answeredBy = answeredBy;
  }
}

/** The caller's signal aborted the call; not the node's fault. */
export class StorageAbortedError extends StorageError {
  constructor(what: string) {
    super("storage_aborted", `${what} was aborted`, true);
  }
}

/**
 * The write reached the primary but fewer replicas than required confirmed it
 * (`WAIT`). The row may or may not survive a failover, so the caller must not
 * treat it as stored; retrying is safe because writes are last-write-wins.
 */
/**
 * A write made while a failover of its shard was under way: acknowledged or
 * not, the primary it reached may be deposed and its rows discarded. Retryable
 * (the write policy retries it through the failover window, on the new primary).
 */
export class FailoverUnderWayError extends StorageError {
  /** `sent`: "nothing" when the write was refused before it was sent, "maybe" when the failover began while it was out. */
  constructor(shard: string, sent: Sent = "maybe") {
    super("failover_in_progress", `shard ${shard}: a failover is under way; the write is tried again on the new primary`, true, undefined, sent);
  }
}

export class WriteNotAcknowledgedError extends StorageError {
  readonly acked: number;
  readonly required: number;

  constructor(node: string, acked: number, required: number, cause?: unknown) {
    super("write_not_acknowledged", `${node}: write confirmed by ${acked} of ${required} required replicas`, true, cause);
    this.acked = acked;
    this.required = required;
  }
}

/**
 * No member of a shard could serve the call within its window (e.g. no
 * primary during a failover). `sent` is "nothing" when the shard refused it
 * without asking a server (no primary known).
 */
export class ShardUnavailableError extends StorageError {
  constructor(shard: string, what: string, cause?: unknown, sent: Sent = "maybe") {
    super("shard_unavailable", `${shard}: ${what}`, true, cause, sent);
  }
}

/**
 * A shard's circuit breaker is open: calls fail at once, without I/O, until it
 * lets a trial call through. `retryAfterMs` is when that will be. Sent
 * nothing: a write's breaker refuses before its first attempt
 * (ResilientShard.putMany makes sure of it).
 */
export class ShardBreakerOpenError extends StorageError {
  readonly retryAfterMs: number;

  constructor(shard: string, op: "read" | "write", retryAfterMs: number) {
    // Half-open (a trial under way) the breaker names no time: as the Retry-After header, at least 1 s.
    super("shard_breaker_open", `${shard}: ${op}s are failing fast (breaker open); retry in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`, true, undefined, "nothing");
    this.retryAfterMs = retryAfterMs;
  }

  /** For a Retry-After header: whole seconds, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** More calls wait for a shard than its bulkhead queue holds: the shard is saturated (the call was refused, nothing sent). */
export class ShardSaturatedError extends StorageError {
  constructor(shard: string) {
    super("shard_saturated", `${shard}: too many calls waiting for this shard`, true, undefined, "nothing");
  }
}

/**
 * The innermost "timeout" of a storage call: the work raced against one plain
 * timer. cockatiel's TimeoutPolicy does the same with an AbortController, an
 * abort listener and a derived signal per call: measured with Bun 1.4 at
 * ~6 µs per call against ~0.2 µs for this race (Redis I/O cannot be cancelled
 * anyway, only the wait ends). The late result is dropped, never delivered.
 * `onTimeout` gets how late the timer fired (ms): see resilience/local-stall.ts.
 * With `cancel`, its signal ends the wait too (rejecting with its error), and
 * whichever ends it first clears the timer and the listener.
 */
export function raceDeadline<T>(work: Promise<T>, ms: number, onTimeout: (lateMs: number) => Error, cancel?: Cancel): Promise<T> {
  if (cancel?.signal.aborted) {
    work.catch(() => {});
    return Promise.reject(cancel.error());
  }
  if (ms <= 0) {
    work.catch(() => {});
    return Promise.reject(onTimeout(0));
  }
  // When the timer fires, how late it is says whether this process, not the callee, was too busy to hear an answer.
  const due = performance.now() + ms;
  return new Promise<T>((resolve, reject) => {
    // No listener (and no closure for one) without a signal: shard calls race this way on the hot path.
    const onAbort =
      cancel === undefined
        ? undefined
        : (): void => {
            clearTimeout(timer);
            reject(cancel.error());
          };
    const timer = setTimeout(() => {
      if (onAbort !== undefined) cancel!.signal.removeEventListener("abort", onAbort);
      reject(onTimeout(Math.max(0, performance.now() - due)));
    }, ms);
    if (onAbort !== undefined) cancel!.signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        clearTimeout(timer);
        if (onAbort !== undefined) cancel!.signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (onAbort !== undefined) cancel!.signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** A caller's signal that may end a race early, and the error it ends it with. */
export interface Cancel {
  readonly signal: AbortSignal;
  readonly error: () => Error;
}

/**
 * Races a storage call against a timeout and the caller's signal (leaf
 * nodes' per-command bound; shard calls use the resilience policies). The call
 * itself is not cancelled (Redis has no cancel); only the wait ends.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  return raceDeadline(work, ms, (late) => new StorageTimeoutError(what, ms, late), signal === undefined ? undefined : { signal, error: () => new StorageAbortedError(what) });
}

/** Resolves after `ms`, or early (without error) when the signal aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
