import { setTimeout as sleep } from "node:timers/promises";
import { loadConfig } from "../config/config.ts";
import { loadRegistryFile, parseDurationMs } from "../registry/index.ts";
import { loadSourcesFile } from "./compile-sources.ts";
import { openPublisher } from "./engines.ts";
import { EventGenerator } from "./event-generator.ts";

/**
 * Demo and load producer: `npm run ingest:produce -- --source NAME --rate 10000 --duration 30s`
 * publishes events in the source's own schema onto its stream, with
 * configurable shares of duplicates, late and malformed events. Bounded in
 * count and time; prints what it sent.
 */
const USAGE = `npm run ingest:produce -- --source NAME [options]
  --sources FILE      sources file (default src/ingest/example-sources.yaml)
  --registry FILE     registry (default: the server's --registry default)
  --rate N            events per second (default 1000)
  --duration D        how long, e.g. 30s (default 10s)
  --count N           stop after N events (default: rate × duration)
  --entities N        distinct entity ids (default 10000)
  --duplicates F      share of exact re-sends (default 0)
  --late F            share of events up to a minute old (default 0)
  --malformed F       share of undecodable or wrongly typed events (default 0)
  --maxlen N          Redis: trim the stream with MAXLEN ~ N
  --seed N            random seed (default 1)
`;

function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}"\n${USAGE}`);
    const eq = a.indexOf("=");
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else out.set(a.slice(2), argv[++i] ?? "");
  }
  return out;
}

function num(args: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: expected a number from ${min} to ${max}, got "${raw}"`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has("help")) {
    process.stdout.write(USAGE);
    return;
  }
  const name = args.get("source");
  if (!name) throw new Error(`--source is required\n${USAGE}`);
  const registryPath = args.get("registry") ?? loadConfig([], {}).registryPath;
  const registry = await loadRegistryFile(registryPath);
  const sources = await loadSourcesFile(args.get("sources") ?? "src/ingest/example-sources.yaml", registry);
  const source = sources.find((s) => s.name === name);
  if (!source) throw new Error(`--source: no source "${name}" (sources: ${sources.map((s) => s.name).join(", ")})`);
  const rate = num(args, "rate", 1000, 1, 10_000_000);
  const durationMs = parseDurationMs(args.get("duration") ?? "10s");
  if (durationMs === undefined) throw new Error(`--duration: expected a duration like "30s"`);
  const count = num(args, "count", Math.ceil((rate * durationMs) / 1000), 1, 1e9);
  const maxLen = args.has("maxlen") ? num(args, "maxlen", 0, 1, 1e12) : undefined;
  const generator = new EventGenerator(source, registry, {
    entities: num(args, "entities", 10_000, 1, 1e9),
    seed: num(args, "seed", 1, 0, 2 ** 31),
    mix: { duplicates: num(args, "duplicates", 0, 0, 1), late: num(args, "late", 0, 0, 1), malformed: num(args, "malformed", 0, 0, 1) },
  });
  const publisher = await openPublisher(source, maxLen === undefined ? {} : { maxLen });
  const started = performance.now();
  const tickMs = 10;
  let sent = 0;
  let lastReport = started;
  try {
    while (sent < count && performance.now() - started < durationMs + 5000) {
      const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
      if (due > sent) {
        const batch = new Array<Uint8Array>(Math.min(due - sent, 5000));
        for (let i = 0; i < batch.length; i++) batch[i] = generator.next().payload;
        await publisher.publish(batch);
        sent += batch.length;
      } else {
        await sleep(tickMs);
      }
      if (performance.now() - lastReport >= 1000) {
        lastReport = performance.now();
        process.stderr.write(`\r${sent} events (${Math.round((sent * 1000) / (lastReport - started))}/s)   `);
      }
    }
  } finally {
    await publisher.close();
  }
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write("\n");
  console.log(JSON.stringify({ source: name, engine: source.engine, sent, seconds: Math.round(seconds * 100) / 100, rate: Math.round(sent / seconds), kinds: generator.counts }));
}

try {
  await main();
} catch (e) {
  console.error(`ingest:produce: ${(e as Error).message}`);
  process.exit(1);
}
