import { writeFileSync } from "node:fs";
import { topologyYaml } from "./cluster.ts";
import { type ClusterState, readState, writeState } from "./cluster-state.ts";
import { awaitReplication, startShard } from "./daemon.ts";
import { sentinelReady, waitUntil, withRedis } from "./redis-probe.ts";

/**
 * `shards:add`: one more shard for the running local cluster, started like the
 * others, registered with every Sentinel (`SENTINEL MONITOR`), and appended to
 * the topology file. The server picks it up on a topology reload, which
 * starts the migration of the keys the new shard now owns.
 */
export async function clusterAdd(runDir: string, replicas: number | undefined, log: (line: string) => void = () => {}): Promise<ClusterState> {
  const state = readState(runDir);
  if (!state) throw new Error("no cluster running (start one with `npm run shards:up`)");
  const count = replicas ?? Math.max(0, (state.shards[0]?.nodes.length ?? 1) - 1);
  const taken = new Set(state.shards.map((s) => s.name));
  let n = state.shards.length + 1;
  while (taken.has(`shard-${n}`)) n++;
  const shard = await startShard(runDir, state, `shard-${n}`, count, state.settings.appendOnly);
  await awaitReplication(shard);
  const primary = shard.nodes[0]!;
  const { downAfterMs, failoverTimeoutMs, quorum } = state.settings;
  for (const s of state.sentinels) {
    await withRedis(`${s.host}:${s.port}`, async (r) => {
      await r.call("SENTINEL", "MONITOR", shard.masterName, primary.host, String(primary.port), String(quorum));
      await r.call("SENTINEL", "SET", shard.masterName, "down-after-milliseconds", String(downAfterMs), "failover-timeout", String(failoverTimeoutMs), "parallel-syncs", "1");
    });
  }
  for (const s of state.sentinels) {
    const ready = () => sentinelReady(`${s.host}:${s.port}`, shard.masterName, count, state.sentinels.length - 1);
    if (!(await waitUntil(ready, 30_000, 200))) throw new Error(`sentinel ${s.port} did not pick up ${shard.masterName} within 30 s`);
  }
  writeState(runDir, state);
  writeFileSync(state.topologyPath, topologyYaml(state));
  log(`${shard.name}: primary ${primary.host}:${primary.port}, ${count} replica(s); sentinels watch it; ${state.topologyPath} updated`);
  return state;
}
