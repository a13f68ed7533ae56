import type { ResilienceObserver, StallJudge } from "../resilience/index.ts";
import { type Discovery, StaticDiscovery } from "./discovery.ts";
import { ReplicaSet } from "./replica-set.ts";
import { SentinelDiscovery } from "./sentinel-discovery.ts";
import { type ConnectedShards, ShardSet } from "./shard-set.ts";
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

/** Who hears about breaker transitions, retries and failed shard calls (metrics, anomalies). */
export interface ShardObservers {
  readonly observer?: ResilienceObserver;
  /** Which shard timeouts this process caused (its loop overloaded): not counted against the shard. */
  readonly stall?: StallJudge;
}

/** Builds the discovery a shard spec asks for. */
function discoveryFor(spec: ShardSpec): Discovery {
  return spec.kind === "sentinel"
    ? new SentinelDiscovery({ sentinels: spec.sentinels, masterName: spec.masterName })
    : new StaticDiscovery({ primary: spec.primary, replicas: spec.replicas });
}

/** Connects one shard; `stall` judges its members' read timeouts as its policies' do. */
export function connectShard(spec: ShardSpec, defaults: ShardTuning = {}, options: ConnectShardsOptions = {}, stall?: StallJudge): Promise<ReplicaSet> {
  return ReplicaSet.connect({ ...defaults, ...spec.tuning, ...options, id: spec.name, discovery: discoveryFor(spec), ...(stall !== undefined ? { stall } : {}) });
}

/** Connects shards in parallel; if one fails, closes the others and throws its error (which names the shard). */
export async function connectAll(specs: readonly ShardSpec[], defaults: ShardTuning, options: ConnectShardsOptions, stall?: StallJudge): Promise<ReplicaSet[]> {
  const settled = await Promise.allSettled(specs.map((spec) => connectShard(spec, defaults, options, stall)));
  const sets = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(sets.map((s) => s.close()));
    throw failed.reason;
  }
  return sets;
}

/**
 * Connects every shard of a topology. Bad configuration (e.g. no Sentinel
 * knows a master) fails here, at start-up, naming the shard.
 */
export async function connectShards(topology: Topology, options: ConnectShardsOptions = {}, observers: ShardObservers = {}): Promise<ConnectedShards> {
  const connect = (specs: readonly ShardSpec[], defaults: ShardTuning): Promise<ReplicaSet[]> => connectAll(specs, defaults, options, observers.stall);
  return new ShardSet(topology, await connect(topology.shards, topology.defaults), connect, observers.observer, observers.stall);
}
