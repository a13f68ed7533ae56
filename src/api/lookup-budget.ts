/**
 * Longest budget a lookup may have (ms), on every edge: HTTP refuses a longer
 * `x-quiver-timeout-ms`, a LookupStream message a longer `timeout_ms`, and a
 * gRPC call's deadline past it bounds the call, not the lookup's reads. A
 * lookup is not a batch job: a 300 s gRPC deadline held an admission slot
 * for minutes while a shard hung, after its client had long cancelled.
 */
export const MAX_LOOKUP_BUDGET_MS = 60_000;
