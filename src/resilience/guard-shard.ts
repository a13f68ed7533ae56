import type { StallJudge } from "./local-stall.ts";
import { ResilientShard, type ShardNode } from "./resilient-shard.ts";
import { type ResilienceObserver, shardPolicies } from "./shard-policies.ts";
import { type ResilienceSettings, resilienceSettings } from "./settings.ts";

/** What a shard's tuning says about its policies (a replica set's options are a superset). */
export interface GuardTuning extends Partial<ResilienceSettings> {
  readonly failoverWindowMs?: number;
  readonly ackTimeoutMs?: number;
}

/** Puts a shard behind its policies, built from its tuning over the defaults. */
export function guardShard(inner: ShardNode, tuning: GuardTuning, observer: ResilienceObserver, clock?: () => number, judge?: StallJudge): ResilientShard {
  const settings = resilienceSettings(tuning);
  const policies = shardPolicies(inner.id, settings, tuning.failoverWindowMs ?? 10_000, observer, clock);
  return new ResilientShard(inner, policies, settings, observer, settings.writeTimeoutMs + (tuning.ackTimeoutMs ?? 500), judge);
}
