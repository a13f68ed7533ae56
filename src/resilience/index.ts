export { AdaptiveAdmission, type Admission, type AdmissionOptions, type AdmissionSnapshot, REFUSED_CPU, REFUSED_LIMIT, type Refusal, refusalReason } from "./admission.ts";
export { ResilientShard, type ShardGuardState, type ShardNode } from "./resilient-shard.ts";
export { guardShard } from "./guard-shard.ts";
export { type BreakerState, IGNORE_OBSERVER, type ResilienceObserver, type ShardOp, shardPolicies } from "./shard-policies.ts";
export { DEFAULT_RESILIENCE, RESILIENCE_KEYS, type ResilienceSettings, resilienceSettings } from "./settings.ts";
export { type EndOfTurn, type LoopPressure, type LoopPressureOptions, TurnSojourn } from "./loop-pressure.ts";
export { firedLate, judgeTimeout, LATENESS_JUDGE, LoopStallJudge, type StallJudge, type StallVerdict, type TimedOutCall } from "./local-stall.ts";
export { CommonCauseJudge, type CommonCauseOptions } from "./common-cause.ts";
export { type LoopLag, LoopLagProbe } from "./loop-lag.ts";
