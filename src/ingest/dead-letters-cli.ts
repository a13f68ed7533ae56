import { loadConfig } from "../config/config.ts";
import { loadRegistryFile } from "../registry/index.ts";
import { loadSourcesFile } from "./compile-sources.ts";
import { openDeadLetters, openPublisher } from "./engines.ts";
import { DEAD_LETTER_REASONS } from "./mapping.ts";
import { replayDeadLetters, whyKept } from "./replay.ts";

/**
 * `npm run ingest:dead-letters -- list --source NAME [--sources FILE] [--limit N]`
 * prints a source's dead letters (one JSON line each: id, reason, path, error,
 * origin, time, payload as text or base64);
 * `... replay --source NAME [--reason R] [--limit N]` puts them back on the
 * source's stream after a fix and removes them from the dead-letter stream.
 */
const USAGE = "npm run ingest:dead-letters -- list|replay --source NAME [--sources FILE] [--registry FILE] [--limit N] [--reason REASON]\n";

const OPTIONS = new Set(["source", "sources", "registry", "limit", "reason"]);

function payloadText(bytes: Uint8Array): { payload: string } | { payloadBase64: string } {
  try {
    return { payload: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    return { payloadBase64: Buffer.from(bytes).toString("base64") };
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command !== "list" && command !== "replay") throw new Error(USAGE);
  const args = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}"\n${USAGE}`);
    if (!OPTIONS.has(a.slice(2))) throw new Error(`unknown option "${a}"\n${USAGE}`);
    args.set(a.slice(2), rest[++i] ?? "");
  }
  const registry = await loadRegistryFile(args.get("registry") ?? loadConfig([], {}).registryPath);
  const sources = await loadSourcesFile(args.get("sources") ?? "src/ingest/example-sources.yaml", registry);
  const name = args.get("source");
  const source = sources.find((s) => s.name === name);
  if (!source) throw new Error(`--source: expected one of ${sources.map((s) => s.name).join(", ")}, got "${name ?? ""}"`);
  const limit = Number(args.get("limit") ?? "100");
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit: expected a positive integer, got "${args.get("limit")}"`);
  const reason = args.get("reason");
  // A typo (invalid-value) matched nothing: replay said replayed 0 and list printed nothing, both exiting 0.
  if (reason !== undefined && !(DEAD_LETTER_REASONS as readonly string[]).includes(reason)) {
    throw new Error(`--reason: expected one of ${DEAD_LETTER_REASONS.join(", ")}, got "${reason}"`);
  }
  const queue = await openDeadLetters(source);
  try {
    if (command === "list") {
      // Only this source's: sources sharing a stream share its dead letters (replaying another's on this source's subject wrote it here).
      for (const l of await queue.list(limit, { source: source.name, ...(reason === undefined ? {} : { reason }) })) {
        console.log(JSON.stringify({ id: l.id, source: l.source, reason: l.reason, path: l.path, error: l.error, origin: l.origin, at: new Date(l.at).toISOString(), ...(l.cutFrom === undefined ? {} : { cutFrom: l.cutFrom }), ...payloadText(l.payload) }));
      }
      return;
    }
    const publisher = await openPublisher(source);
    try {
      const { replayed, kept } = await replayDeadLetters(queue, publisher, { limit, source: source.name, ...(reason === undefined ? {} : { reason }) });
      console.log(JSON.stringify({ source: source.name, replayed: replayed.length, ...(kept.length > 0 ? { kept: kept.length } : {}) }));
      // One line per cause (an entry without the field, a payload cut to fit), with up to 10 ids each.
      const causes = new Map<string, string[]>();
      for (const l of kept) {
        const cause = l.cutFrom === undefined ? l.path : "(cut)";
        const ids = causes.get(cause) ?? [];
        ids.push(l.id);
        causes.set(cause, ids);
      }
      for (const ids of causes.values()) {
        const letter = kept.find((l) => l.id === ids[0])!;
        console.error(`quiver ingest: ${ids.length} letter(s) kept, not replayed (ids ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? ", …" : ""}): ${whyKept(letter)}`);
      }
    } finally {
      await publisher.close();
    }
  } finally {
    await queue.close();
  }
}

try {
  await main();
} catch (e) {
  console.error(`ingest:dead-letters: ${(e as Error).message}`);
  process.exit(1);
}
