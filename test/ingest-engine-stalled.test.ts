import { expect, test } from "bun:test";
import { IngestMetrics, IngestService, openPublisher } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import type { SourceDef } from "../src/ingest/sources-definitions.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { startNatsEngine, startRedisEngine } from "./support/stream-engines.ts";

/**
 * The stream engine stops answering (SIGSTOP: the process keeps its sockets,
 * as a partition without RST does). Redis's blocking XREADGROUP had no
 * timeout: /readyz said `running` with no error, and stop() (SIGTERM) waited
 * until Redis answered again; on NATS, drain() did the same. Now the Redis
 * reader is reported `reconnecting`, and stop() returns while the engine is
 * still stopped. Real engines.
 */
async function consuming(def: SourceDef) {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const compiled = compileSources({ sources: [def] }, registry);
  const store = new ArenaKvNode("stalled-engine");
  const ingest = await IngestService.start(compiled, {
    push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
    store,
    metrics: new IngestMetrics(new MetricsRegistry()),
    consumerName: "c1",
    consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, stopGraceMs: 200, pauseMs: { initial: 50, max: 200 } },
  });
  const publisher = await openPublisher(compiled[0]!);
  await publisher.publish([new TextEncoder().encode(JSON.stringify({ customer: "s1", amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }))]);
  await publisher.close();
  await eventually("written", () => ingest.status()[0]!.written === 1);
  return ingest;
}

/** Whether `stop` returns while the engine is still stopped (given 30 s: it took as long as the engine's stop). */
async function stopReturns(ingest: IngestService): Promise<boolean> {
  let stopped = false;
  void ingest.stop().then(() => {
    stopped = true;
  });
  await eventually("stop returned", () => stopped, 30_000).catch(() => undefined);
  return stopped;
}

test("Redis stalled: the consumer shows reconnecting with the error, and stop returns while Redis is still stopped", async () => {
  const engine = await startRedisEngine();
  try {
    const ingest = await consuming({ name: "stalled", ...engine.engineSettings(), format: "json", batchSize: 10, mappings: [paymentsMapping()] });
    engine.server.pause();
    await eventually("reconnecting", () => ingest.status()[0]!.state === "reconnecting");
    expect(ingest.status()[0]!.lastError).toContain("the Redis server does not answer");
    expect(await stopReturns(ingest)).toBe(true);
    expect(ingest.status()[0]!.state).toBe("stopped");
  } finally {
    engine.server.resume();
    await engine.stop();
  }
}, 90_000);

test("NATS stalled: stop returns while the server is still stopped", async () => {
  const engine = await startNatsEngine();
  try {
    const ingest = await consuming({ name: "stalled", ...engine.engineSettings(), format: "json", batchSize: 10, mappings: [paymentsMapping()] });
    process.kill(engine.server.pid, "SIGSTOP");
    await eventually("reconnecting", () => ingest.status()[0]!.state === "reconnecting");
    expect(await stopReturns(ingest)).toBe(true);
    expect(ingest.status()[0]!.state).toBe("stopped");
  } finally {
    process.kill(engine.server.pid, "SIGCONT");
    await engine.stop();
  }
}, 90_000);
