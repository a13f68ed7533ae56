import type { ConnectedShards } from "../shard/index.ts";
import type { MetricsRegistry } from "./metrics.ts";

const MIGRATION_STATES = ["pending", "running", "paused", "done", "failed"] as const;

/** Publishes per-shard, per-member and migration figures at scrape time. */
export function registerShardGauges(metrics: MetricsRegistry, shards: ConnectedShards): void {
  const members = () => shards.stats().flatMap((s) => s.members.map((m) => ({ shard: s.id, m })));
  metrics.gauge("quiver_shard_member_up", "1 when a Redis member answers its probes, by shard, address and role.", () =>
    members().map(({ shard, m }) => ({ labels: { shard, address: m.address, role: m.role }, value: m.healthy ? 1 : 0 })),
  );
  metrics.gauge("quiver_shard_member_latency_seconds", "Latency EWMA of each Redis member (reads and probes).", () =>
    members().flatMap(({ shard, m }) => (m.latencyEwmaMs === null ? [] : [{ labels: { shard, address: m.address }, value: m.latencyEwmaMs / 1000 }])),
  );
  metrics.gauge("quiver_shard_member_errors", "Failed commands per Redis member since start.", () =>
    members().map(({ shard, m }) => ({ labels: { shard, address: m.address }, value: m.errors })),
  );
  metrics.gauge("quiver_shard_member_replication_lag_bytes", "Bytes each replica is behind its primary.", () =>
    members().flatMap(({ shard, m }) => (m.lagBytes === null ? [] : [{ labels: { shard, address: m.address }, value: m.lagBytes }])),
  );
  metrics.gauge("quiver_shard_events", "Per-shard event counts since start: failovers followed, write retries, unacknowledged writes, read fallbacks, Sentinels in doubt about the primary.", () =>
    shards.stats().flatMap((s) => [
      { labels: { shard: s.id, event: "primary_change" }, value: s.primaryChanges },
      { labels: { shard: s.id, event: "write_retry" }, value: s.writeRetries },
      { labels: { shard: s.id, event: "write_not_acknowledged" }, value: s.writesNotAcknowledged },
      { labels: { shard: s.id, event: "read_fallback" }, value: s.readFallbacks },
      { labels: { shard: s.id, event: "discovery_conflict" }, value: s.discoveryConflicts },
    ]),
  );
  metrics.gauge("quiver_migration_keys", "Keys handled by the latest rebalancing migration, by stage.", () => {
    const p = shards.migration?.progress();
    if (!p) return [];
    return [
      { labels: { stage: "scanned" }, value: p.scannedKeys },
      { labels: { stage: "moved" }, value: p.movedKeys },
      { labels: { stage: "copied" }, value: p.copiedRows },
      { labels: { stage: "deleted" }, value: p.deletedKeys },
    ];
  });
  metrics.gauge("quiver_migration_page_retries", "Pages of the latest migration tried again after a failure (a shard timeout or failover, a stall of this process).", () => {
    const p = shards.migration?.progress();
    return p ? [{ value: p.retriedPages }] : [];
  });
  metrics.gauge("quiver_migration_rescans", "Source scans of the latest migration started again from the start because the source's primary became another process (a failover, a restart): its cursor was no longer good.", () => {
    const p = shards.migration?.progress();
    return p ? [{ value: p.rescans }] : [];
  });
  metrics.gauge("quiver_migration_progress_ratio", "Scanned share of the latest migration (0..1).", () => {
    const p = shards.migration?.progress();
    return p ? [{ value: p.fraction }] : [];
  });
  metrics.gauge("quiver_migration_state", "1 for the latest migration's state.", () => {
    const p = shards.migration?.progress();
    return p ? MIGRATION_STATES.map((state) => ({ labels: { state }, value: p.state === state ? 1 : 0 })) : [];
  });
}
