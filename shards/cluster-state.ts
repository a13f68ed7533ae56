import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What `shards:up` started, recorded as it goes so `shards:down` can stop
 * exactly those processes even after a failed or interrupted start.
 */

export interface ProcessRecord {
  readonly kind: "redis" | "sentinel";
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
}

export interface ShardRecord {
  readonly name: string;
  readonly masterName: string;
  /** The first node started as primary; roles may change after a failover (see `shards:status`). */
  readonly nodes: ProcessRecord[];
}

/** How the cluster was started; `shards:add` starts new shards the same way. */
export interface ClusterSettings {
  readonly downAfterMs: number;
  readonly failoverTimeoutMs: number;
  readonly quorum: number;
  readonly appendOnly: boolean;
}

export interface ClusterState {
  readonly createdAt: string;
  readonly topologyPath: string;
  readonly settings: ClusterSettings;
  readonly shards: ShardRecord[];
  readonly sentinels: ProcessRecord[];
  /** The L2 cache Redis (`shards:up -- --l2`), shared by the pods of the site; not a shard. */
  l2?: ProcessRecord;
}

export const stateFile = (runDir: string): string => join(runDir, "state.json");

export function readState(runDir: string): ClusterState | undefined {
  const path = stateFile(runDir);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, "utf8")) as ClusterState;
}

/** Atomic replace, so a crash mid-write never leaves a state file `down` cannot read. */
export function writeState(runDir: string, state: ClusterState): void {
  const tmp = `${stateFile(runDir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, stateFile(runDir));
}

export function allProcesses(state: ClusterState): ProcessRecord[] {
  return [...state.sentinels, ...state.shards.flatMap((s) => s.nodes), ...(state.l2 ? [state.l2] : [])];
}

/**
 * True only if `pid` is alive and is the redis-server (or Sentinel) we started
 * on that port: a recycled PID of some other program is never signalled.
 */
export function isOurRedis(record: ProcessRecord): boolean {
  try {
    const comm = readFileSync(`/proc/${record.pid}/comm`, "utf8").trim();
    const cmdline = readFileSync(`/proc/${record.pid}/cmdline`, "utf8").replaceAll("\0", " ");
    return (comm === "redis-server" || comm === "redis-sentinel") && cmdline.includes(`:${record.port}`);
  } catch {
    return false;
  }
}

/** Alive and not a zombie: daemons are reparented to init, which may reap them late. */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

/** SIGTERM (SIGCONT first, in case it was paused), SIGKILL after `graceMs`. Answers what happened. */
export async function stopProcess(record: ProcessRecord, graceMs = 5000): Promise<"stopped" | "killed" | "not running" | "not ours"> {
  if (!alive(record.pid)) return "not running";
  if (!isOurRedis(record)) return "not ours";
  process.kill(record.pid, "SIGCONT");
  process.kill(record.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (!alive(record.pid)) return "stopped";
    await Bun.sleep(50);
  }
  if (!isOurRedis(record)) return "stopped";
  process.kill(record.pid, "SIGKILL");
  return "killed";
}
