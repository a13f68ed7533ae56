import { drainBound } from "./api/http/index.ts";
import { buildQuiver } from "./app.ts";
import { helpText, loadConfig } from "./config/config.ts";
import { QuiverError } from "./errors/index.ts";

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
  // Before the port opens: the first clients meet optimised code (api/http/warmup.ts).
  if (config.warmupLookups > 0) {
    const w = await quiver.warmUp(config.warmupLookups);
    const statuses = Object.entries(w.byStatus).map(([status, n]) => `${n} × ${status}`).join(", ");
    console.log(`quiver warmed up: ${w.lookups} lookups in ${w.ms} ms (${statuses || "none"}; ${w.sampledEntities} stored entities sampled)`);
  }
  const server = Bun.serve({
    hostname: config.host,
    port: config.port,
    // Bun's own cap is a backstop above the app's 413, which reads and discards an oversized body up to drainBound so the client reads the answer.
    maxRequestBodySize: config.maxBodyBytes + drainBound(config.maxBodyBytes),
    routes: quiver.http.nativeRoutes,
    fetch: quiver.http.app.fetch,
  });
  console.log(`quiver listening on http://${server.hostname}:${server.port} (${quiver.summary})`);
  if (config.grpcPort >= 0) {
    try {
      const port = await quiver.grpc.listen(config.host, config.grpcPort);
      console.log(`quiver gRPC listening on ${config.host}:${port} (${quiver.grpc.services.join(", ")})`);
    } catch (e) {
      console.error(`quiver: cannot start: gRPC on ${config.host}:${config.grpcPort}: ${(e as Error).message} (--grpc-port / QUIVER_GRPC_PORT)`);
      process.exit(1);
    }
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`quiver: ${signal}, draining`);
    // In-flight HTTP requests and gRPC calls finish; gRPC health turns NOT_SERVING first.
    await Promise.all([server.stop(), quiver.grpc.drain(10_000)]);
    await quiver.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

await main();
