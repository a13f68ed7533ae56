import { Redis } from "ioredis";

/**
 * One-shot queries against redis-server and Sentinel processes, used while
 * starting, inspecting and stopping them (launcher and tests). Never on the
 * serving path: each call opens and closes its own connection.
 */

/** Runs `fn` on a fresh connection to `address`; rejects if it cannot connect or answer within `timeoutMs`. */
export async function withRedis<T>(address: string, fn: (redis: Redis) => Promise<T>, timeoutMs = 1000): Promise<T> {
  const [host, port] = address.split(":");
  const redis = new Redis({
    host,
    port: Number(port),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

export async function answersPing(address: string, timeoutMs = 500): Promise<boolean> {
  try {
    return (await withRedis(address, (r) => r.ping(), timeoutMs)) === "PONG";
  } catch {
    return false;
  }
}

/** Polls `check` until it is true or `timeoutMs` passes; answers whether it became true. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    try {
      if (await check()) return true;
    } catch {
      // Not yet.
    }
    if (Date.now() >= deadline) return false;
    await Bun.sleep(intervalMs);
  }
  return false;
}

/** `INFO <section>` as a field map. */
export async function info(address: string, section: string, timeoutMs = 1000): Promise<Record<string, string>> {
  const text = await withRedis(address, (r) => r.info(section), timeoutMs);
  const out: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

/** Flat `[field, value, ...]` replies (Sentinel) as a map. */
export function pairs(reply: unknown): Record<string, string> {
  const flat = Array.isArray(reply) ? reply : [];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

/** True once `primary` has `count` replicas whose link is online. */
export async function replicasOnline(primary: string, count: number): Promise<boolean> {
  const repl = await info(primary, "replication");
  if (repl["role"] !== "master") return false;
  let online = 0;
  for (let i = 0; i < count + 8; i++) if (repl[`slave${i}`]?.includes("state=online")) online++;
  return online >= count;
}

/**
 * True once the server at `address` answers and is the process `pid`: a PING
 * alone can be answered by another server that took the port first (two
 * servers started together can be handed the same free port, and the second
 * exits unable to bind while the first answers for it).
 */
export async function answersAs(address: string, pid: number, timeoutMs = 500): Promise<boolean> {
  try {
    return (await info(address, "server", timeoutMs))["process_id"] === String(pid);
  } catch {
    return false;
  }
}

/** `SENTINEL MASTER name` as a field map. */
export async function sentinelMaster(sentinel: string, name: string): Promise<Record<string, string>> {
  return pairs(await withRedis(sentinel, (r) => r.call("SENTINEL", "MASTER", name)));
}

/** True once `sentinel` sees the master with `replicas` replicas and `others` other sentinels. */
export async function sentinelReady(sentinel: string, name: string, replicas: number, others: number): Promise<boolean> {
  const m = await sentinelMaster(sentinel, name);
  return Number(m["num-slaves"]) >= replicas && Number(m["num-other-sentinels"]) >= others && !String(m["flags"]).includes("down");
}
