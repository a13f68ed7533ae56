/**
 * Which server (and, on Redis, which database) a source's address names, for
 * the sources file's checks of two sources on one group, durable or stream
 * (compile-sources.ts). Compared as text, `redis://localhost:6379`,
 * `redis://127.0.0.1:6379/0` and `redis://127.0.0.1` were three servers, and
 * two sources reading one stream through one group under those spellings were
 * accepted (each got part of the events). Read here as the clients read them:
 * ioredis's `redis[s]://[user:pass@]host[:port][/db][?db=N]` (port 6379, db 0),
 * a unix socket path or a port alone (on localhost), nats.js's `[scheme://]host[:port]` (port 4222 whatever
 * the scheme). Host names are lower-cased and every loopback spelling
 * (`localhost`, 127.0.0.0/8, `::1`) is one host; credentials and the TLS
 * scheme do not make another server. Text the parse refuses stays as written.
 */

const REDIS_PORT = 6379;
const NATS_PORT = 4222;

function hostId(host: string): string {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  // URL writes IPv6 addresses compressed and in hex: `[0:0::1]` is `::1`, `[::ffff:127.0.0.1]` is `::ffff:7f00:1`.
  if (h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h)) return "loopback";
  return h;
}

/** `host:port/db` (or `unix:path/db`) of an ioredis URL. */
export function redisServerId(url: string): string {
  const text = url.trim();
  // ioredis takes a number alone for a port on localhost (read as a URL it was a host named "6380").
  if (/^\d+$/.test(text)) return `loopback:${Number(text)}/0`;
  try {
    if (text.startsWith("/") && !text.startsWith("//")) {
      const q = text.indexOf("?");
      const db = q < 0 ? undefined : new URLSearchParams(text.slice(q + 1)).get("db");
      return `unix:${q < 0 ? text : text.slice(0, q)}/${dbIndex(db ?? undefined)}`;
    }
    const parsed = new URL(/^rediss?:\/\//i.test(text) ? text : text.startsWith("//") ? `redis:${text}` : `redis://${text}`);
    const path = parsed.pathname.replace(/\/+$/, "").slice(1);
    const db = path !== "" ? path : (parsed.searchParams.get("db") ?? undefined);
    return `${hostId(parsed.hostname)}:${parsed.port === "" ? REDIS_PORT : Number(parsed.port)}/${dbIndex(db)}`;
  } catch {
    return text;
  }
}

function dbIndex(db: string | undefined): string {
  if (db === undefined || db === "") return "0";
  const n = Number(db);
  return Number.isInteger(n) ? String(n) : db;
}

/**
 * The servers of a `servers` setting, comma-separated, as the list nats.js
 * takes. Handed the text as it is, nats.js read it as one server: it stripped
 * everything up to the last `://`, so `nats://a:4222,nats://b:4222` connected to
 * b only (refused while b was down, a alive) and `a:4222,b:4222` was an
 * invalid URL.
 */
export function natsSeedList(servers: string): string[] {
  return servers
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** `host:port` of each server of a nats.js `servers` setting (comma-separated, natsSeedList), sorted. */
export function natsServerIds(servers: string): string[] {
  const out = new Set<string>();
  for (const part of natsSeedList(servers)) {
    let text = part.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
    if (text === "") continue;
    // nats.js takes a bare IPv6 address (`::1`) as a host without a port.
    if (text.includes("::") && !text.startsWith("[")) text = `[${text}]`;
    try {
      const parsed = new URL(`http://${text}`);
      out.add(`${hostId(parsed.hostname)}:${parsed.port === "" || parsed.port === "80" ? portOf(text) : Number(parsed.port)}`);
    } catch {
      out.add(text);
    }
  }
  return [...out].sort();
}

/** URL drops a port that is its scheme's default (80 for http): read it from the text. */
function portOf(hostPort: string): number {
  const m = /:(\d+)(\/.*)?$/.exec(hostPort.replace(/^\[[^\]]*\]/, ""));
  return m === null ? NATS_PORT : Number(m[1]);
}

/** Whether two nats `servers` settings share a server: one cluster reached through different seed lists. */
export function natsShareServer(a: readonly string[], b: readonly string[]): boolean {
  return a.some((s) => b.includes(s));
}
