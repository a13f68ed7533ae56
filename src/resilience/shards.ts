/**
 * The shard guard: cockatiel's policies (bulkhead, breaker, retry, timeout)
 * around each Redis shard. Apart from the pod-wide parts in index.ts, so a
 * server without a topology loads neither these modules nor cockatiel: every
 * young collection walks all the code a process holds (src/app.ts, on loading
 * the gRPC edge).
 */
export { guardShard } from "./guard-shard.ts";
export { ResilientShard, type ShardGuardState, type ShardNode } from "./resilient-shard.ts";
export { type BreakerState, IGNORE_OBSERVER, type ResilienceObserver, type ShardOp, shardPolicies } from "./shard-policies.ts";
