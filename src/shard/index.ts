export { type HostPort, parseHostPort } from "./address.ts";
export { type ConnectShardsOptions, connectShard, connectShards } from "./connect-shards.ts";
export type { Discovery, Layout } from "./discovery.ts";
export type { MemberStats, ReadFrom } from "./member.ts";
export { Migration, type MigrationMember, type MigrationOptions, type MigrationProgress } from "./rebalance.ts";
export { ReplicaSet, type ReplicaSetOptions, type ReplicaSetStats } from "./replica-set.ts";
export type { ConnectedShard, ConnectedShards, ReconfigureOptions, ShardStats } from "./shard-set.ts";
export {
  type DirectShardSpec,
  loadTopology,
  parseTopology,
  type SentinelShardSpec,
  type ShardSpec,
  type ShardTuning,
  type Topology,
} from "./topology.ts";
