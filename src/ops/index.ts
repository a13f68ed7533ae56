export { MeteredKvNode } from "./metered-node.ts";
export { Counter, CounterHandle, type GaugeSample, Histogram, HistogramHandle, LATENCY_BUCKETS, MetricsRegistry, type RewindKeep } from "./metrics.ts";
export { registerShardGauges } from "./shard-gauges.ts";
export { ANOMALY_KINDS, type Anomaly, AnomalyBuffer, type AnomalyKind } from "./anomaly-buffer.ts";
export { registerBreakerGauge, resilienceObserver } from "./resilience-metrics.ts";
export { type ShedReason, ShedRecorder } from "./shed-recorder.ts";
