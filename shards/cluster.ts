import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { allProcesses, type ClusterState, isOurRedis, type ProcessRecord, readState, stopProcess, writeState } from "./cluster-state.ts";
import { awaitReplication, startDaemon, startShard } from "./daemon.ts";
import { redisConfText, sentinelConfText } from "./redis-conf.ts";
import { sentinelReady, waitUntil } from "./redis-probe.ts";

/**
 * A local cluster on loopback: S shards × (1 primary + R replicas) plus
 * Sentinels, each a daemonized redis-server with its own data dir and AOF,
 * so it outlives the CLI. Everything started is recorded in the state file.
 */

export interface UpOptions {
  readonly shards: number;
  readonly replicas: number;
  readonly sentinels: number;
  readonly runDir: string;
  readonly topologyPath: string;
  readonly downAfterMs: number;
  readonly failoverTimeoutMs: number;
  readonly appendOnly: boolean;
  /** Also start an L2 cache redis-server with this `maxmemory` (e.g. "256mb") and `allkeys-lru`. */
  readonly l2MaxMemory?: string;
  readonly log?: (line: string) => void;
}

export async function clusterUp(o: UpOptions): Promise<ClusterState> {
  const log = o.log ?? (() => {});
  const previous = readState(o.runDir);
  if (previous) {
    const running = allProcesses(previous).filter(isOurRedis);
    if (running.length > 0) throw new Error(`a cluster is already running (${running.length} processes); run \`npm run shards:down\` first`);
    rmSync(o.runDir, { recursive: true, force: true });
  }
  mkdirSync(o.runDir, { recursive: true });
  const quorum = Math.floor(o.sentinels / 2) + 1;
  const settings = { downAfterMs: o.downAfterMs, failoverTimeoutMs: o.failoverTimeoutMs, quorum, appendOnly: o.appendOnly };
  const state: ClusterState = { createdAt: new Date().toISOString(), topologyPath: o.topologyPath, settings, shards: [], sentinels: [] };
  try {
    for (let s = 1; s <= o.shards; s++) {
      const shard = await startShard(o.runDir, state, `shard-${s}`, o.replicas, o.appendOnly);
      log(`${shard.name}: primary ${shard.nodes[0]!.host}:${shard.nodes[0]!.port}, ${o.replicas} replica(s) started`);
    }
    for (const shard of state.shards) await awaitReplication(shard);
    log("replication is up");
    const masters = state.shards.map((s) => ({ name: s.masterName, address: `${s.nodes[0]!.host}:${s.nodes[0]!.port}` }));
    for (let i = 1; i <= o.sentinels; i++) {
      const conf = (port: number, dir: string): string =>
        sentinelConfText({ port, dir, masters, quorum, downAfterMs: o.downAfterMs, failoverTimeoutMs: o.failoverTimeoutMs, daemonize: true });
      state.sentinels.push(await startDaemon(o.runDir, `sentinel-${i}`, "sentinel", conf));
      writeState(o.runDir, state);
    }
    for (const sentinel of state.sentinels) {
      for (const m of masters) {
        const ready = () => sentinelReady(`${sentinel.host}:${sentinel.port}`, m.name, o.replicas, o.sentinels - 1);
        if (!(await waitUntil(ready, 30_000, 200))) throw new Error(`sentinel ${sentinel.port} did not discover ${m.name} within 30 s`);
      }
    }
    log(`${o.sentinels} sentinel(s) know every master`);
    if (o.l2MaxMemory !== undefined) {
      // A cache: no persistence, evicts least recently used keys when full.
      const extra = [`maxmemory ${o.l2MaxMemory}`, "maxmemory-policy allkeys-lru"];
      state.l2 = await startDaemon(o.runDir, "l2", "redis", (port, dir) => redisConfText({ port, dir, appendOnly: false, daemonize: true, extra }));
      writeState(o.runDir, state);
      log(`L2 cache: ${state.l2.host}:${state.l2.port} (maxmemory ${o.l2MaxMemory}, allkeys-lru)`);
    }
    writeFileSync(o.topologyPath, topologyYaml(state));
    log(`wrote ${o.topologyPath}`);
    return state;
  } catch (error) {
    log(`start failed, stopping what was started: ${error instanceof Error ? error.message : error}`);
    await clusterDown(o.runDir, o.topologyPath);
    throw error;
  }
}

/** The topology file for the cluster (Sentinel addresses, so failovers are followed). */
export function topologyYaml(state: ClusterState): string {
  const sentinels = state.sentinels.map((s) => `${s.host}:${s.port}`);
  const shards = state.shards.map((s) => ({ name: s.name, weight: 1, masterName: s.masterName, sentinels }));
  const header = `# Written by \`npm run shards:up\` at ${state.createdAt}; removed by \`npm run shards:down\`.\n`;
  const cache = state.l2 ? { cache: { l2: `${state.l2.host}:${state.l2.port}` } } : {};
  return header + stringify({ shards, ...cache }, { aliasDuplicateObjects: false });
}

/** Stops every recorded process (Sentinels first, so they do not fail over a shard being stopped), then removes the run dir. */
export async function clusterDown(runDir: string, topologyPath?: string, log: (line: string) => void = () => {}): Promise<number> {
  const state = readState(runDir);
  if (!state) {
    log("no cluster recorded");
    return 0;
  }
  let stopped = 0;
  const order: ProcessRecord[] = [...state.sentinels, ...state.shards.flatMap((s) => [...s.nodes].reverse()), ...(state.l2 ? [state.l2] : [])];
  for (const p of order) {
    const outcome = await stopProcess(p);
    if (outcome === "stopped" || outcome === "killed") stopped++;
    log(`${p.kind} ${p.host}:${p.port} pid ${p.pid}: ${outcome}`);
  }
  rmSync(runDir, { recursive: true, force: true });
  const topology = topologyPath ?? state.topologyPath;
  if (topology && existsSync(topology) && readFileSync(topology, "utf8").includes("npm run shards:up")) rmSync(topology);
  return stopped;
}
