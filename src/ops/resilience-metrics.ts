import type { ResilienceObserver, ShardGuardState } from "../resilience/index.ts";
import type { AnomalyBuffer } from "./anomaly-buffer.ts";
import type { MetricsRegistry } from "./metrics.ts";

const BREAKER_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * The shard policies' events as metrics and anomalies. Only failures,
 * retries and breaker transitions come here: a successful call reports nothing.
 */
export function resilienceObserver(metrics: MetricsRegistry, anomalies: AnomalyBuffer): ResilienceObserver {
  const transitions = metrics.counter("quiver_shard_breaker_transitions_total", "Circuit breaker state changes by shard, operation and new state.", ["shard", "op", "state"]);
  const retries = metrics.counter("quiver_shard_retries_total", "Shard calls retried by the policies, by shard and operation.", ["shard", "op"]);
  const failures = metrics.counter(
    "quiver_shard_failures_total",
    "Shard calls that failed after their retries, by shard, operation and reason (storage_timeout, shard_breaker_open, shard_saturated, shard_unavailable, ...).",
    ["shard", "op", "reason"],
  );
  return {
    breakerChanged(shard, op, state) {
      transitions.labels(shard, op, state).inc();
      anomalies.record("breaker", `${shard}/${op}`, state);
    },
    retried(shard, op) {
      retries.labels(shard, op).inc();
    },
    failed(shard, op, reason) {
      failures.labels(shard, op, reason).inc();
      anomalies.record(op === "read" ? "degraded_read" : "failed_write", shard, reason);
    },
  };
}

/** `quiver_shard_breaker_state` (0 closed, 1 half-open, 2 open) per shard and operation, read at scrape time. */
export function registerBreakerGauge(metrics: MetricsRegistry, states: () => readonly ShardGuardState[]): void {
  metrics.gauge("quiver_shard_breaker_state", "Circuit breaker state per shard and operation: 0 closed, 1 half-open, 2 open.", () =>
    states().flatMap((g) => [
      { labels: { shard: g.shard, op: "read" }, value: BREAKER_VALUE[g.read] },
      { labels: { shard: g.shard, op: "write" }, value: BREAKER_VALUE[g.write] },
    ]),
  );
}
