import type { KvNode } from "../kv/kv-node.ts";
import { type Discovery, StaticDiscovery } from "./discovery.ts";
import { ReplicaSet, type ReplicaSetStats } from "./replica-set.ts";
import { SentinelDiscovery } from "./sentinel-discovery.ts";
import type { ShardSpec, ShardTuning, Topology } from "./topology.ts";

/**
 * Overrides for every shard, on top of the file's `defaults` and per-shard
 * settings. Pass only what the operator set explicitly (CLI flags, env vars),
 * or the file's values are shadowed.
 */
export interface ConnectShardsOptions extends ShardTuning {
  /** Start-up deadline per shard for discovery and connections (default 3000 ms). */
  readonly connectTimeoutMs?: number;
  /** Sentinel poll period besides pushed events (default 1000 ms). */
  readonly discoveryIntervalMs?: number;
}

/** A shard as the ring sees it; structurally the sharded store's `ShardMember`. */
export interface ConnectedShard {
  readonly id: string;
  readonly weight: number;
  readonly node: KvNode;
}

/** One shard's stats for /readyz and /metrics. */
export interface ShardStats extends ReplicaSetStats {
  readonly weight: number;
}

export interface ConnectedShards {
  /** In topology order; hand these to the ring / sharded store. */
  readonly members: ConnectedShard[];
  stats(): ShardStats[];
  close(): Promise<void>;
}

/** Builds the discovery a shard spec asks for. */
function discoveryFor(spec: ShardSpec): Discovery {
  return spec.kind === "sentinel"
    ? new SentinelDiscovery({ sentinels: spec.sentinels, masterName: spec.masterName })
    : new StaticDiscovery({ primary: spec.primary, replicas: spec.replicas });
}

/** Connects one shard (also used when a topology reload adds a shard). */
export function connectShard(spec: ShardSpec, defaults: ShardTuning = {}, options: ConnectShardsOptions = {}): Promise<ReplicaSet> {
  return ReplicaSet.connect({ ...defaults, ...spec.tuning, ...options, id: spec.name, discovery: discoveryFor(spec) });
}

/**
 * Connects every shard of a topology in parallel. If one cannot be reached
 * (e.g. no Sentinel knows its master), the others are closed and the error,
 * naming the shard, is thrown: bad configuration fails at start-up.
 */
export async function connectShards(topology: Topology, options: ConnectShardsOptions = {}): Promise<ConnectedShards> {
  const settled = await Promise.allSettled(topology.shards.map((spec) => connectShard(spec, topology.defaults, options)));
  const sets = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(sets.map((s) => s.close()));
    throw failed.reason;
  }
  const weights = topology.shards.map((s) => s.weight);
  return {
    members: sets.map((node, i) => ({ id: node.id, weight: weights[i]!, node })),
    stats: () => sets.map((s, i) => ({ ...s.stats(), weight: weights[i]! })),
    close: async () => {
      await Promise.all(sets.map((s) => s.close()));
    },
  };
}
