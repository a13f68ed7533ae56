import { writeSync } from "node:fs";
import { buildQuiver } from "../app.ts";
import { helpText, loadConfig } from "../config/config.ts";
import { QuiverError } from "../errors/index.ts";

/**
 * Standalone streaming writer: `npm run ingest -- --sources FILE [server flags]`.
 * Same flags and store configuration as the server; consumes every source of
 * the file, one consumer per source, and serves HTTP only when `--port` is
 * given: then the server's whole HTTP API (lookups, /metrics, /readyz, and the
 * write and admin routes, open unless `--admin-token` is set, as on the
 * server). Its store must be one something reads: Redis shards
 * (`--topology`), a `--data-dir`, or its own memory served on `--port`;
 * otherwise it is refused at start. SIGTERM/SIGINT finish and ack the batch in hand, then
 * print the final counts as one JSON line (`ingest-stats {...}`).
 *
 * Crash testing: `--fault-stop-after-writes N` stops the process (SIGSTOP)
 * after its Nth store write, before the acknowledgement, so a test can
 * `kill -9` it at exactly that point; `--fault-half-write` makes that Nth
 * write store only the first half of the batch's rows (a crash mid-batch).
 */
function say(line: string): void {
  writeSync(1, `${line}\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`npm run ingest -- --sources FILE [flags]\n\n${helpText()}`);
    return;
  }
  let stopAfter = 0;
  let halfWrite = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--fault-half-write") halfWrite = true;
    else if (a === "--fault-stop-after-writes" || a.startsWith("--fault-stop-after-writes=")) {
      const raw = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      stopAfter = Number(raw);
      if (!Number.isInteger(stopAfter) || stopAfter < 1) throw new Error(`--fault-stop-after-writes: expected a positive integer, got "${raw}"`);
    } else rest.push(a);
  }
  let config: ReturnType<typeof loadConfig>;
  let quiver: Awaited<ReturnType<typeof buildQuiver>>;
  try {
    config = loadConfig(rest, process.env);
    if (!config.sourcesPath) throw new Error("--sources FILE is required");
    // Its own memory is a store nothing else reads, gone at exit: every event would be acknowledged and lost (20 of 20 in
    // test/ingest-standalone-store.test.ts; beside a server of the same group, its share of the stream). With --port it
    // serves lookups.
    if (!config.topologyPath && !config.dataDir && !config.explicit.has("port")) {
      throw new Error(
        "no store shared with anything that reads it: without --topology (Redis shards) or --data-dir, the writer's store is its own memory, " +
          "which nothing reads unless --port serves lookups from it and which is gone when it exits; the events it consumed would be acknowledged and lost",
      );
    }
    // A standalone writer loads no demo rows unless told to, and serves no gRPC (so loads none of its code).
    if (!config.explicit.has("demoEntities")) config = { ...config, demoEntities: 0 };
    config = { ...config, grpcPort: -1 };
    const fault =
      stopAfter > 0
        ? {
            ...(halfWrite ? { halfWriteAt: stopAfter } : {}),
            afterWrite: (written: number, n: number) => {
              if (n !== stopAfter) return;
              say(`fault: stopped after store write ${n} (${written} rows written, not acknowledged)`);
              process.kill(process.pid, "SIGSTOP");
            },
          }
        : undefined;
    quiver = await buildQuiver(config, fault ? { consumerOptions: { fault } } : {});
  } catch (e) {
    if (e instanceof QuiverError && e.issues.length > 0) {
      console.error(`quiver ingest: cannot start: ${e.issues.length} problem(s):`);
      for (const i of e.issues) console.error(`  ${i.path}: ${i.message}`);
    } else {
      console.error(`quiver ingest: cannot start: ${(e as Error).message}`);
    }
    process.exit(1);
  }
  const server = config.explicit.has("port") ? Bun.serve({ hostname: config.host, port: config.port, routes: quiver.http.nativeRoutes, fetch: quiver.http.app.fetch }) : undefined;
  say(`quiver ingest running${server ? ` on http://${server.hostname}:${server.port}` : ""} (${quiver.summary})`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`quiver ingest: ${signal}, finishing the batch in hand`);
    await server?.stop();
    const ingest = quiver.ingest;
    await quiver.close();
    say(`ingest-stats ${JSON.stringify(ingest?.status() ?? [])}`);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

await main();
