import { pause } from "../kv/storage-errors.ts";

export interface PatientRetryOptions {
  /** Tries after the first (Infinity: until one succeeds or `signal` aborts). */
  readonly retries: number;
  /** First wait (ms); doubling up to `maxDelayMs`, each drawn between three quarters and all of that (jitter, which keeps the tries' span within a quarter of its sum: a caller can size it against a bound, as the migration does against a breaker's open state). */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** Ends the tries: a wait is cut short and the last failure is thrown; the try in flight finishes first. */
  readonly signal?: AbortSignal;
  /** Called before each wait with the failure and the wait (ms). */
  readonly onRetry?: (error: unknown, delayMs: number) => void;
}

/**
 * Runs `fn` again after each failure, waiting an exponential back-off with
 * jitter between tries, until it succeeds or the tries are spent (the last
 * failure is thrown). For background work that must get done (a migration's
 * page, a vector index's catch-up), not for requests, which have their
 * shard policies. Not cockatiel's retry policy: it sleeps each delay out
 * whatever its signal says, so a shutdown would wait for the longest delay
 * (10–30 s) before the work noticed; here an abort ends the wait at once.
 * Nor cockatiel's back-off classes: importing cockatiel here put its modules
 * into the embedded server, which otherwise never loads them (the vector
 * indexes use this; test/server-process.test.ts counts what a server loads).
 */
export async function retryPatiently<T>(fn: () => Promise<T>, o: PatientRetryOptions): Promise<T> {
  let ceiling = o.initialDelayMs;
  for (let tried = 0; ; tried++) {
    try {
      return await fn();
    } catch (error) {
      if (tried >= o.retries || o.signal?.aborted) throw error;
      const ms = ceiling * (0.75 + Math.random() * 0.25);
      ceiling = Math.min(o.maxDelayMs, ceiling * 2);
      o.onRetry?.(error, ms);
      await pause(ms, o.signal);
      if (o.signal?.aborted) throw error;
    }
  }
}
