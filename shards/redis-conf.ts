import { createServer } from "node:net";

/**
 * Config files for the redis-server and Sentinel processes the launcher and
 * the integration tests start. One place, so tests run what users run.
 */

export interface RedisServerConf {
  readonly port: number;
  /** Data dir (AOF, logs); the process owns it. */
  readonly dir: string;
  /** AOF with `appendfsync everysec` (the launcher's default; tests mostly skip it). */
  readonly appendOnly?: boolean;
  /** `host:port` of the primary to replicate. */
  readonly replicaOf?: string;
  /** Fork into the background and write `dir/redis.pid` (launcher); tests keep children attached. */
  readonly daemonize?: boolean;
  readonly extra?: readonly string[];
}

export function redisConfText(conf: RedisServerConf): string {
  const lines = [
    `port ${conf.port}`,
    "bind 127.0.0.1",
    `dir ${conf.dir}`,
    `logfile ${conf.dir}/redis.log`,
    'save ""',
    `appendonly ${conf.appendOnly ? "yes" : "no"}`,
    "appendfsync everysec",
    // Full syncs start at once instead of waiting 5 s for more replicas to join.
    "repl-diskless-sync yes",
    "repl-diskless-sync-delay 0",
    `daemonize ${conf.daemonize ? "yes" : "no"}`,
    `pidfile ${conf.dir}/redis.pid`,
  ];
  if (conf.replicaOf) {
    const [host, port] = conf.replicaOf.split(":");
    lines.push(`replicaof ${host} ${port}`);
  }
  return `${[...lines, ...(conf.extra ?? [])].join("\n")}\n`;
}

export interface SentinelConf {
  readonly port: number;
  readonly dir: string;
  readonly masters: ReadonlyArray<{ readonly name: string; readonly address: string }>;
  /** Sentinels that must agree the master is down (default 2). */
  readonly quorum?: number;
  /** `down-after-milliseconds` (default 3000, like `shards:up`; tests use ~1000). Quiver's `failoverWindowMs` must exceed it plus the promotion. */
  readonly downAfterMs?: number;
  /** `failover-timeout` (default 10000; tests use ~3000). */
  readonly failoverTimeoutMs?: number;
  readonly daemonize?: boolean;
}

/** Sentinel rewrites this file at run time, so it must live in the sentinel's own dir. */
export function sentinelConfText(conf: SentinelConf): string {
  const lines = [
    `port ${conf.port}`,
    "bind 127.0.0.1",
    `dir ${conf.dir}`,
    `logfile ${conf.dir}/sentinel.log`,
    `daemonize ${conf.daemonize ? "yes" : "no"}`,
    `pidfile ${conf.dir}/redis.pid`,
  ];
  for (const m of conf.masters) {
    const [host, port] = m.address.split(":");
    lines.push(
      `sentinel monitor ${m.name} ${host} ${port} ${conf.quorum ?? 2}`,
      `sentinel down-after-milliseconds ${m.name} ${conf.downAfterMs ?? 3000}`,
      `sentinel failover-timeout ${m.name} ${conf.failoverTimeoutMs ?? 10000}`,
      `sentinel parallel-syncs ${m.name} 1`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** A loopback port that was free a moment ago (callers retry on a bind race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}
