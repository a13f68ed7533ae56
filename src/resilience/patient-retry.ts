import { ExponentialBackoff, type IBackoff } from "cockatiel";
import { pause } from "../kv/storage-errors.ts";

export interface PatientRetryOptions {
  /** Tries after the first (Infinity: until one succeeds or `signal` aborts). */
  readonly retries: number;
  /** First wait (ms); doubling, with cockatiel's decorrelated jitter, up to `maxDelayMs`. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** Ends the tries: a wait is cut short and the last failure is thrown; the try in flight finishes first. */
  readonly signal?: AbortSignal;
  /** Called before each wait with the failure and the wait (ms). */
  readonly onRetry?: (error: unknown, delayMs: number) => void;
}

/**
 * Runs `fn` again after each failure, waiting cockatiel's exponential
 * back-off between tries, until it succeeds or the tries are spent (the last
 * failure is thrown). For background work that must get done (a migration's
 * page, a vector index's catch-up), not for requests, which have their
 * shard policies. Not cockatiel's own retry policy: it sleeps each delay out
 * whatever its signal says, so a shutdown would wait for the longest delay
 * (10–30 s) before the work noticed; here an abort ends the wait at once.
 */
export async function retryPatiently<T>(fn: () => Promise<T>, o: PatientRetryOptions): Promise<T> {
  const factory = new ExponentialBackoff({ initialDelay: o.initialDelayMs, maxDelay: o.maxDelayMs });
  let backoff: IBackoff<unknown> | undefined;
  for (let tried = 0; ; tried++) {
    try {
      return await fn();
    } catch (error) {
      if (tried >= o.retries || o.signal?.aborted) throw error;
      backoff = backoff === undefined ? factory.next() : backoff.next(undefined);
      o.onRetry?.(error, backoff.duration);
      await pause(backoff.duration, o.signal);
      if (o.signal?.aborted) throw error;
    }
  }
}
