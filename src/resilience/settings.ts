/**
 * Every number of the per-shard policies. Defaults follow the system design
 * this project implements: a lookup gets 2 retries (immediately, then after
 * 10 ms) inside a 50 ms budget; a write 3 retries with exponential back-off
 * from 100 ms, each attempt bounded by 1 s (a replica set's primary ends it at
 * 250 ms plus the WAIT), for at most the failover window;
 * a breaker opens after 5 failures within 10 s, stays open 30 s, then lets
 * trial calls through and closes for good after 3 successes (a trial lost to
 * a stall that was not the shard's reopens it for 1 s only).
 */
export interface ResilienceSettings {
  /** Read budget across members and retries when the request sets no deadline of its own (ms). */
  readonly requestTimeoutMs: number;
  /** Bound on one read attempt on one member (ms); a member that does not answer in time is skipped by the next attempt. */
  readonly readAttemptTimeoutMs: number;
  /**
   * Longest one read attempt on one member may take, however long the request's
   * budget (ms): an attempt gets its share of the budget, at least
   * `readAttemptTimeoutMs` and at most this; the last one that fits gets the
   * rest, at most this too. A gRPC call with a 300 s deadline
   * gave a hung member 100 s per attempt, holding its admission slot that long.
   */
  readonly readAttemptMaxMs: number;
  /** Read retries after the first attempt (each goes to the next member in read order). */
  readonly readRetries: number;
  /** Pause before the second and later read retries (ms); the first retry is immediate. */
  readonly readRetryDelayMs: number;
  /** Write retries after the first attempt (more are made while a failover is in progress, within `failoverWindowMs`). */
  readonly writeRetries: number;
  /** First write back-off (ms), doubled per retry up to 1 s. */
  readonly writeBackoffMs: number;
  /**
   * Outer bound on one write attempt (ms), on top of the replicas' WAIT timeout. A replica set's
   * primary ends an attempt sooner, at its command deadline (`attemptTimeoutMs`, 250 ms) plus the WAIT.
   */
  readonly writeTimeoutMs: number;
  /** Failed calls within `breakerWindowMs` that open a shard's breaker. */
  readonly breakerFailures: number;
  readonly breakerWindowMs: number;
  /** How long an open breaker fails calls at once before letting a trial through (ms). */
  readonly breakerOpenMs: number;
  /**
   * How long a breaker stays open again when its trial timed out while this
   * process was stalled or most shards timed out together (ms): that trial
   * said nothing about the shard, so the next one comes sooner than `breakerOpenMs`.
   */
  readonly breakerRetrialMs: number;
  /** Successful trial calls after which a half-open breaker counts as closed; one failure among them reopens it. */
  readonly breakerTrials: number;
  /** Calls in flight to one shard at most; more wait in the bulkhead queue. */
  readonly bulkheadConcurrency: number;
  /** Calls waiting for a shard at most; beyond that a call fails at once (that shard is saturated). */
  readonly bulkheadQueue: number;
}

export const DEFAULT_RESILIENCE: ResilienceSettings = {
  requestTimeoutMs: 50,
  readAttemptTimeoutMs: 20,
  readAttemptMaxMs: 1000,
  readRetries: 2,
  readRetryDelayMs: 10,
  writeRetries: 3,
  writeBackoffMs: 100,
  writeTimeoutMs: 1000,
  breakerFailures: 5,
  breakerWindowMs: 10_000,
  breakerOpenMs: 30_000,
  breakerRetrialMs: 1000,
  breakerTrials: 3,
  bulkheadConcurrency: 256,
  bulkheadQueue: 1024,
};

/** Names of the settings, for topology-file validation. */
export const RESILIENCE_KEYS = Object.keys(DEFAULT_RESILIENCE) as (keyof ResilienceSettings)[];

/** The defaults overlaid with whatever a topology file or flags set. */
export function resilienceSettings(overrides: Partial<ResilienceSettings> = {}): ResilienceSettings {
  const out: Record<string, number> = { ...DEFAULT_RESILIENCE };
  for (const key of RESILIENCE_KEYS) {
    const v = overrides[key];
    if (v !== undefined) out[key] = v;
  }
  return out as unknown as ResilienceSettings;
}
