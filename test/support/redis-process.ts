import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, redisConfText, sentinelConfText } from "../../shards/redis-conf.ts";
import { answersAs, replicasOnline, sentinelReady, waitUntil } from "../../shards/redis-probe.ts";
import { liveProcesses } from "./live-processes.ts";

/**
 * Real redis-server and Sentinel processes for integration tests: each on a
 * free loopback port with its own temp dir, stopped by PID and cleaned up.
 * Never touches the system Redis on 6379.
 */

/** A running redis-server (or Sentinel) the test owns. */
export interface RedisProcess {
  readonly host: string;
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  readonly pid: number;
  readonly dir: string;
  readonly kind: "redis" | "sentinel";
  /** SIGKILL, no clean-up of the dir (the test may inspect it); `stop()` still removes it. */
  kill9(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but stops answering. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
  /** SIGTERM (SIGKILL after 3 s), then removes the dir. Idempotent. */
  stop(): Promise<void>;
  /** After `kill9()`: starts the server again on the same port and dir, and waits until it answers PING. */
  restart(): Promise<void>;
}

const live = liveProcesses;

async function spawnServer(kind: "redis" | "sentinel", confFor: (port: number, dir: string) => string): Promise<RedisProcess> {
  let lastLog = "";
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `quiver-${kind}-`));
    const confPath = join(dir, kind === "redis" ? "redis.conf" : "sentinel.conf");
    writeFileSync(confPath, confFor(port, dir));
    const args = kind === "redis" ? ["redis-server", confPath] : ["redis-server", confPath, "--sentinel"];
    const proc = Bun.spawn(args, { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    live.set(proc.pid, proc);
    const address = `127.0.0.1:${port}`;
    if (await waitUntil(() => answersAs(address, proc.pid, 300), 5000, 50)) return handle(kind, proc, port, dir);
    lastLog = readLog(dir, kind);
    await terminate(proc);
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`could not start ${kind}: ${lastLog.slice(-500)}`);
}

function readLog(dir: string, kind: "redis" | "sentinel"): string {
  try {
    return readFileSync(join(dir, kind === "redis" ? "redis.log" : "sentinel.log"), "utf8");
  } catch {
    return "(no log)";
  }
}

async function terminate(proc: Subprocess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGCONT");
  proc.kill("SIGTERM");
  const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  if (!exited) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

function handle(kind: "redis" | "sentinel", first: Subprocess, port: number, dir: string): RedisProcess {
  let stopped = false;
  let proc = first;
  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    get pid() {
      return proc.pid;
    },
    dir,
    kind,
    async kill9() {
      proc.kill("SIGKILL");
      await proc.exited;
      live.delete(proc.pid);
    },
    pause() {
      proc.kill("SIGSTOP");
    },
    resume() {
      proc.kill("SIGCONT");
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(proc);
      live.delete(proc.pid);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      const confPath = join(dir, kind === "redis" ? "redis.conf" : "sentinel.conf");
      proc = Bun.spawn(kind === "redis" ? ["redis-server", confPath] : ["redis-server", confPath, "--sentinel"], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
      live.set(proc.pid, proc);
      const started = proc;
      if (!(await waitUntil(() => answersAs(`127.0.0.1:${port}`, started.pid, 300), 10_000, 50))) throw new Error(`${kind} on port ${port} did not restart: ${readLog(dir, kind).slice(-300)}`);
    },
  };
}

export interface StartRedisOptions {
  /** `host:port` of a primary to replicate. */
  readonly replicaOf?: string;
  readonly appendOnly?: boolean;
  readonly extra?: readonly string[];
}

/** Starts a redis-server and waits until it answers PING. */
export function startRedis(options: StartRedisOptions = {}): Promise<RedisProcess> {
  return spawnServer("redis", (port, dir) => redisConfText({ port, dir, ...options }));
}

export interface StartSentinelOptions {
  readonly masters: ReadonlyArray<{ readonly name: string; readonly address: string }>;
  readonly quorum?: number;
  readonly downAfterMs?: number;
  readonly failoverTimeoutMs?: number;
}

/** Starts a Sentinel (`redis-server <conf> --sentinel`) and waits until it answers PING. */
export function startSentinel(options: StartSentinelOptions): Promise<RedisProcess> {
  return spawnServer("sentinel", (port, dir) => sentinelConfText({ port, dir, ...options }));
}

/** A primary, its replicas and (optionally) the Sentinels watching it. */
export interface ReplicationGroup {
  readonly masterName: string;
  readonly primary: RedisProcess;
  readonly replicas: readonly RedisProcess[];
  readonly sentinels: readonly RedisProcess[];
  /** Stops every process of the group. */
  stop(): Promise<void>;
}

export interface StartGroupOptions {
  readonly replicas: number;
  /** Number of Sentinels (0 = none, direct addressing). */
  readonly sentinels?: number;
  readonly masterName?: string;
  readonly downAfterMs?: number;
  readonly failoverTimeoutMs?: number;
  readonly appendOnly?: boolean;
}

/**
 * Starts 1 primary + N replicas, waits until every replica link is online,
 * then (optionally) Sentinels, and waits until each knows all replicas and
 * the other Sentinels, so a failover can start as soon as the test needs it.
 */
export async function startReplicationGroup(options: StartGroupOptions): Promise<ReplicationGroup> {
  const masterName = options.masterName ?? "quiver-test";
  const started: RedisProcess[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.stop()));
  };
  try {
    const primary = await startRedis({ appendOnly: options.appendOnly });
    started.push(primary);
    const replicas = await Promise.all(
      Array.from({ length: options.replicas }, () => startRedis({ replicaOf: primary.address, appendOnly: options.appendOnly })),
    );
    started.push(...replicas);
    if (!(await waitUntil(() => replicasOnline(primary.address, options.replicas), 15_000))) {
      throw new Error(`replicas of ${primary.address} did not come online`);
    }
    const count = options.sentinels ?? 0;
    const sentinels = await Promise.all(
      Array.from({ length: count }, () =>
        startSentinel({
          masters: [{ name: masterName, address: primary.address }],
          quorum: Math.min(2, count),
          downAfterMs: options.downAfterMs ?? 1000,
          failoverTimeoutMs: options.failoverTimeoutMs ?? 3000,
        }),
      ),
    );
    started.push(...sentinels);
    for (const s of sentinels) {
      if (!(await waitUntil(() => sentinelReady(s.address, masterName, options.replicas, count - 1), 15_000))) {
        throw new Error(`sentinel ${s.address} did not discover ${masterName}`);
      }
    }
    return { masterName, primary, replicas, sentinels, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
