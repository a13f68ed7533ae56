import type { CounterHandle, HistogramHandle, MetricsRegistry } from "../ops/metrics.ts";

/** Handles the cache tier bumps on its paths, resolved once at construction. */
export interface CacheMetrics {
  readonly l1Hits: CounterHandle;
  readonly l1Misses: CounterHandle;
  readonly l1Fills: CounterHandle;
  readonly l1Evictions: CounterHandle;
  readonly l2Hits: CounterHandle;
  readonly l2Misses: CounterHandle;
  readonly l2Fills: CounterHandle;
  readonly l2ReadErrors: CounterHandle;
  readonly l2WriteErrors: CounterHandle;
  readonly l2Repaired: CounterHandle;
  readonly l2Latency: HistogramHandle;
  readonly originReads: CounterHandle;
  readonly originKeys: CounterHandle;
  readonly coalesced: CounterHandle;
  readonly refreshed: CounterHandle;
  readonly staleServed: CounterHandle;
  readonly invalidationsSent: CounterHandle;
  readonly invalidationsApplied: CounterHandle;
  readonly keysSuperseded: CounterHandle;
  readonly gapsCleared: CounterHandle;
}

export function cacheMetrics(metrics: MetricsRegistry): CacheMetrics {
  const hits = metrics.counter("quiver_cache_hits_total", "Keys answered by a cache tier.", ["tier"]);
  const misses = metrics.counter("quiver_cache_misses_total", "Keys a cache tier did not hold (or held past TTL).", ["tier"]);
  const fills = metrics.counter("quiver_cache_fills_total", "Entries written into a cache tier (reads and write-through).", ["tier"]);
  const evictions = metrics.counter("quiver_cache_evictions_total", "Entries pushed out of a cache tier by its byte budget.", ["tier"]);
  const errors = metrics.counter("quiver_cache_errors_total", "Cache tier calls that failed or timed out (reads count as misses, writes are dropped).", ["tier", "op"]);
  const latency = metrics.histogram("quiver_cache_operation_duration_seconds", "Cache tier call latency.", ["tier"]);
  const origin = metrics.counter("quiver_cache_origin_reads_total", "Origin batch reads and keys sent to the origin after both tiers missed.", ["unit"]);
  const invalidations = metrics.counter("quiver_cache_invalidations_total", "Namespace invalidations sent by this pod and applied here.", ["direction"]);
  return {
    l1Hits: hits.labels("l1"),
    l1Misses: misses.labels("l1"),
    l1Fills: fills.labels("l1"),
    l1Evictions: evictions.labels("l1"),
    l2Hits: hits.labels("l2"),
    l2Misses: misses.labels("l2"),
    l2Fills: fills.labels("l2"),
    l2ReadErrors: errors.labels("l2", "read"),
    l2WriteErrors: errors.labels("l2", "write"),
    l2Repaired: metrics.counter("quiver_cache_l2_repaired_keys_total", "Keys removed from L2 after their write-through failed (its copy was older than the origin's), once L2 answered.").labels(),
    l2Latency: latency.labels("l2"),
    originReads: origin.labels("batches"),
    originKeys: origin.labels("keys"),
    coalesced: metrics.counter("quiver_cache_coalesced_reads_total", "Keys whose read joined one already in flight (single-flight).").labels(),
    refreshed: metrics.counter("quiver_cache_refreshed_keys_total", "Keys read again in the background by a hit shortly before their L1 entry expired (refresh ahead).").labels(),
    staleServed: metrics.counter("quiver_cache_stale_served_total", "Rows (keys) served from a grace copy because the origin could not answer; each answers every feature of its view asked for.").labels(),
    invalidationsSent: invalidations.labels("sent"),
    invalidationsApplied: invalidations.labels("applied"),
    keysSuperseded: metrics.counter("quiver_cache_keys_superseded_total", "L1 entries dropped because another pod acknowledged a newer write.").labels(),
    gapsCleared: metrics.counter("quiver_cache_gap_clears_total", "L1 expiries after a change-feed gap (link lost, missed events): every row read again, kept as a grace copy.").labels(),
  };
}
