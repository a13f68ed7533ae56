export { AdaptiveAdmission, type Admission, type AdmissionOptions, type AdmissionSnapshot, REFUSED_CPU, REFUSED_LIMIT, type Refusal, refusalReason } from "./admission.ts";
// The shard guard's values (guardShard, shardPolicies, ...) come from ./shards.ts, which loads cockatiel: only where a
// topology's shards are connected, not in every server. Its types are re-exported here.
export type { ResilientShard, ShardGuardState, ShardNode } from "./resilient-shard.ts";
export type { BreakerState, ResilienceObserver, ShardOp } from "./shard-policies.ts";
export { DEFAULT_RESILIENCE, RESILIENCE_KEYS, type ResilienceSettings, resilienceSettings } from "./settings.ts";
export { type EndOfTurn, type LoopPressure, type LoopPressureOptions, TurnSojourn } from "./loop-pressure.ts";
export { SuspendablePressure } from "./suspendable-pressure.ts";
export { firedLate, judgeTimeout, LATENESS_JUDGE, LoopStallJudge, type StallJudge, type StallVerdict, type TimedOutCall } from "./local-stall.ts";
export { CommonCauseJudge, type CommonCauseOptions } from "./common-cause.ts";
export { type LoopLag, LoopLagProbe } from "./loop-lag.ts";
