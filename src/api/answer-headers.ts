/**
 * Response headers (HTTP) and response metadata (gRPC) that say how an
 * answer was made, the same names on both edges (README, Failure behaviour).
 */

/** The shards whose rows are defaults because they could not answer: `x-quiver-degraded: s1,s2`. */
export const DEGRADED_HEADER = "x-quiver-degraded";
/** How many values a Feast answer gives as NOT_FOUND because their shard was unavailable. */
export const UNAVAILABLE_HEADER = "x-quiver-unavailable";
/** Rows served from a cache's grace copy (a count on HTTP, `true` on gRPC). */
export const STALE_HEADER = "x-quiver-stale";
