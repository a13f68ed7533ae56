import type { MigrationProgress } from "../src/shard/rebalance.ts";

/**
 * `shards:migration`: follows a running server's migration (a topology
 * reload) and draws a progress bar until it is done, paused or failed.
 */

/** One status line: bar, percentage and counters. */
export function formatProgress(p: MigrationProgress, width = 30): string {
  const filled = Math.round(p.fraction * width);
  const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
  const total = p.totalKeys === null ? "?" : String(p.totalKeys);
  const moved = `${p.movedKeys} moved (${(p.movedFraction * 100).toFixed(1)}%)`;
  const retried = p.retriedPages > 0 ? `  ${p.retriedPages} page(s) retried` : "";
  // Absent from a server older than 12-07.
  const rescans = (p.rescans ?? 0) > 0 ? `  ${p.rescans} source scan(s) restarted` : "";
  return `[${bar}] ${String(Math.round(p.fraction * 100)).padStart(3)}%  ${p.scannedKeys}/${total} scanned  ${moved}${retried}${rescans}  ${p.state}${p.error ? `: ${p.error}` : ""}`;
}

/**
 * The progress route from `--url` (a server's base URL or the full route), or
 * an Error naming `--url` and what it expects: a bare "Invalid URL" (or Bun's
 * "protocol must be http:, https: or s3:") named neither the flag nor the value.
 */
export function migrationUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`--url: expected the server's http(s) URL, as http://127.0.0.1:6566, got "${text}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`--url: expected an http: or https: URL, got "${text}" (${url.protocol})`);
  }
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/admin/topology/migration";
  return url.href;
}

export interface WatchOptions {
  readonly url: string;
  readonly token?: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly write?: (text: string) => void;
}

/** Polls `url` (GET, JSON MigrationProgress) until the migration ends; answers its last state. */
export async function watchMigration(o: WatchOptions): Promise<MigrationProgress | undefined> {
  const write = o.write ?? ((text: string) => process.stdout.write(text));
  const headers: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
  const deadline = Date.now() + (o.timeoutMs ?? 3_600_000);
  let last: MigrationProgress | undefined;
  for (let i = 0; i < 10_000_000 && Date.now() < deadline; i++) {
    let res: Response;
    try {
      res = await fetch(o.url, { headers });
    } catch (error) {
      // Bun's "Unable to connect. Is the computer able to access the url?" did not say which URL.
      throw new Error(`${o.url}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (res.status === 404) {
      write("no migration\n");
      return undefined;
    }
    if (!res.ok) throw new Error(`${o.url}: HTTP ${res.status} ${await res.text()}`);
    last = (await res.json()) as MigrationProgress;
    write(`\r${formatProgress(last)}`);
    if (last.state !== "running" && last.state !== "pending") break;
    await Bun.sleep(o.intervalMs ?? 500);
  }
  write("\n");
  return last;
}
