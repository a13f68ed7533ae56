import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ClusterState, type ProcessRecord, type ShardRecord, stopProcess, writeState } from "./cluster-state.ts";
import { freePort, redisConfText } from "./redis-conf.ts";
import { answersAs, replicasOnline, waitUntil } from "./redis-probe.ts";

/** Starts a daemonized redis-server and waits for its pidfile and for it (by pid) to answer; retries another port on a bind race. */
export async function startDaemon(runDir: string, name: string, kind: "redis" | "sentinel", conf: (port: number, dir: string) => string): Promise<ProcessRecord> {
  const dir = join(runDir, name);
  let lastLog = "";
  for (let attempt = 0; attempt < 4; attempt++) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const confPath = join(dir, kind === "redis" ? "redis.conf" : "sentinel.conf");
    writeFileSync(confPath, conf(port, dir));
    Bun.spawnSync(kind === "redis" ? ["redis-server", confPath] : ["redis-server", confPath, "--sentinel"], { stdio: ["ignore", "ignore", "ignore"] });
    const pidPath = join(dir, "redis.pid");
    // The server that answers must be the one started here (its pidfile's pid), not another that had the port.
    const up = await waitUntil(async () => existsSync(pidPath) && (await answersAs(`127.0.0.1:${port}`, Number(readFileSync(pidPath, "utf8").trim()), 300)), 5000, 50);
    if (up) return { kind, host: "127.0.0.1", port, pid: Number(readFileSync(pidPath, "utf8").trim()), dir };
    if (existsSync(pidPath)) {
      const pid = Number(readFileSync(pidPath, "utf8").trim());
      await stopProcess({ kind, host: "127.0.0.1", port, pid, dir });
    }
    const logPath = join(dir, kind === "redis" ? "redis.log" : "sentinel.log");
    lastLog = existsSync(logPath) ? readFileSync(logPath, "utf8").slice(-400) : "(no log)";
  }
  throw new Error(`could not start ${kind} ${name}: ${lastLog}`);
}

/** Starts a shard's primary and replicas (recording each in the state file as it starts) and waits for replication. */
export async function startShard(runDir: string, state: ClusterState, name: string, replicas: number, appendOnly: boolean): Promise<ShardRecord> {
  const shard: ShardRecord = { name, masterName: name, nodes: [] };
  state.shards.push(shard);
  const primary = await startDaemon(runDir, `${name}/node-0`, "redis", (port, dir) => redisConfText({ port, dir, appendOnly, daemonize: true }));
  shard.nodes.push(primary);
  writeState(runDir, state);
  const replicaOf = `${primary.host}:${primary.port}`;
  for (let r = 1; r <= replicas; r++) {
    shard.nodes.push(await startDaemon(runDir, `${name}/node-${r}`, "redis", (port, dir) => redisConfText({ port, dir, appendOnly, daemonize: true, replicaOf })));
    writeState(runDir, state);
  }
  return shard;
}

/** Waits until every replica of the shard's first primary is online. */
export async function awaitReplication(shard: ShardRecord): Promise<void> {
  const primary = shard.nodes[0]!;
  if (!(await waitUntil(() => replicasOnline(`${primary.host}:${primary.port}`, shard.nodes.length - 1), 30_000, 200))) {
    throw new Error(`${shard.name}: replicas did not come online within 30 s`);
  }
}
