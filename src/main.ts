import { closingConnections, drainBound } from "./api/http/index.ts";
import { buildQuiver } from "./app.ts";
import { helpText, loadConfig } from "./config/config.ts";
import { inapplicableSettings } from "./config/inapplicable.ts";
import { QuiverError } from "./errors/index.ts";
import { BackgroundThreads } from "./runtime/background-threads.ts";

/** Entry point: `bun src/main.ts [flags]` (`npm start`). */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText());
    return;
  }
  let quiver: Awaited<ReturnType<typeof buildQuiver>>;
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(argv, process.env);
    const inapplicable = inapplicableSettings(config);
    if (inapplicable.length > 0) throw new Error(`${inapplicable.length} setting(s) given would do nothing here:\n  ${inapplicable.join("\n  ")}`);
    quiver = await buildQuiver(config, { servesSockets: true });
  } catch (e) {
    if (e instanceof QuiverError && e.issues.length > 0) {
      console.error(`quiver: cannot start: ${e.issues.length} problem(s) in the ${e.code === "invalid_sources" ? "sources file" : "registry"}:`);
      for (const i of e.issues) console.error(`  ${i.path}: ${i.message}`);
    } else {
      console.error(`quiver: cannot start: ${(e as Error).message}`);
    }
    process.exit(1);
  }
  // gRPC first, so a warm-up with `grpc` can call it (its health answers NOT_SERVING until the warm-up is done).
  let grpcPort: number | undefined;
  const grpc = quiver.grpc;
  if (grpc !== undefined) {
    try {
      grpcPort = await grpc.listen(config.host, config.grpcPort);
    } catch (e) {
      console.error(`quiver: cannot start: gRPC on ${config.host}:${config.grpcPort}: ${(e as Error).message} (--grpc-port / QUIVER_GRPC_PORT)`);
      process.exit(1);
    }
  }
  // Before HTTP listens (and /readyz can answer): the first clients meet optimised code (api/http/warmup.ts, api/grpc/warmup.ts).
  if (config.warmupLookups > 0) {
    try {
      const w = await quiver.warmUp(config.warmupLookups, config.warmupShapes, grpcPort !== undefined);
      const counts = (by: Readonly<Record<string, number>>, ok: string) => Object.entries(by).map(([k, n]) => `${n} × ${k === ok ? "ok" : k}`).join(", ") || "none";
      const grpc = w.grpc === undefined ? "" : `, ${w.grpc.calls} gRPC calls in ${w.grpc.ms} ms (${counts(w.grpc.byCode, "0")})`;
      console.log(`quiver warmed up in ${w.ms} ms: ${w.http.lookups} HTTP lookups in ${w.http.ms} ms (${counts(w.http.byStatus, "200")})${grpc}; ${w.sampledEntities} stored entities sampled`);
    } catch (e) {
      // The warm-up is an optimisation: a failure of it must not keep a server from serving.
      console.error(`quiver: warm-up failed (${(e as Error).message}); serving without it`);
    }
  }
  // After the warm-up, whose optimising compiles have started the JIT's threads (a timer catches any started later).
  const background = config.backgroundNice < 0 ? undefined : new BackgroundThreads({ nice: config.backgroundNice }).start(10_000);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: config.host,
      port: config.port,
      // Bun's own cap is a backstop above the app's 413, which reads and discards an oversized body up to drainBound so the client reads the answer.
      maxRequestBodySize: config.maxBodyBytes + drainBound(config.maxBodyBytes),
      routes: quiver.http.nativeRoutes,
      fetch: quiver.http.app.fetch,
    });
  } catch (e) {
    // Was an uncaught stack trace after the whole warm-up, naming no flag.
    console.error(`quiver: cannot start: HTTP on ${config.host}:${config.port}: ${(e as Error).message} (--port / PORT, --host / QUIVER_HOST)`);
    process.exit(1);
  }
  console.log(`quiver listening on http://${server.hostname}:${server.port} (${quiver.summary})`);
  if (grpc !== undefined) console.log(`quiver gRPC listening on ${config.host}:${grpcPort} (${grpc.services.join(", ")})`);
  if (background !== undefined) console.log(`quiver: background threads at nice ${config.backgroundNice}: ${background.describe()}`);
  // Bun's own GC timer (a collectAsync every second while the heap changes) started the full collections that stalled
  // lookups under load; npm start and the image turn it off (README, Performance). Said here, so a pod started otherwise shows it.
  if (process.env["BUN_GC_TIMER_DISABLE"] === undefined) console.log("quiver: Bun's GC timer is on (BUN_GC_TIMER_DISABLE=1 turns it off, as npm start does)");

  let stopping = false;
  /** Ends the --shutdown-delay early: set while it runs. */
  let endDelay: (() => void) | undefined;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal during the delay (an operator's second Ctrl-C, `kill` again) drains now; before, it was
      // ignored and the delay ran its full length. During the drain itself it changes nothing: in-flight work ends.
      if (endDelay !== undefined) console.log(`quiver: ${signal} again, draining now (--shutdown-delay cut short)`);
      endDelay?.();
      return;
    }
    stopping = true;
    background?.stop();
    if (config.shutdownDelayMs > 0) {
      // Still serving, unready: load balancers take this pod out before its listeners close (a closed port refused them).
      quiver.beginDrain();
      // Answers say `Connection: close` from here: clients on kept-alive connections move to a ready pod now, rather
      // than meet a reset when the listener closes (api/http/closing.ts).
      server.reload(closingConnections(quiver.http.nativeRoutes, quiver.http.app.fetch));
      console.log(`quiver: ${signal}, unready; serving ${config.shutdownDelayMs} ms more before draining (--shutdown-delay)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, config.shutdownDelayMs);
        endDelay = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      endDelay = undefined;
    }
    console.log(`quiver: ${signal}, draining`);
    // In-flight HTTP requests and gRPC calls finish; gRPC health turns NOT_SERVING first.
    await Promise.all([server.stop(), grpc?.drain(10_000)]);
    await quiver.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

await main();
