import { expect, test } from "bun:test";
import { IngestMetrics, IngestService, openPublisher } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import type { SourceDef } from "../src/ingest/sources-definitions.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { freePort } from "../shards/redis-conf.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { startNats } from "./support/nats-process.ts";
import { startRedisEngine } from "./support/stream-engines.ts";

/**
 * A stream engine that cannot be reached when the consumers start: the start
 * returns (the server serves lookups meanwhile), the consumer says
 * `reconnecting` with the error, and consumes once the engine is there. It
 * used to throw out of the start: the server crash-looped and its lookups went
 * down with the engine. Real engines, started after the consumers.
 */
async function startOn(def: SourceDef, store: ArenaKvNode) {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const compiled = compileSources({ sources: [def] }, registry);
  const ingest = await IngestService.start(compiled, {
    push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
    store,
    metrics: new IngestMetrics(new MetricsRegistry()),
    consumerName: "c1",
    consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 50, max: 200 }, startWaitMs: 100 },
  });
  return { ingest, compiled: compiled[0]! };
}

const event = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));

test("Redis down at start: the start returns, the consumer is reconnecting with the error, and consumes once Redis is back", async () => {
  const engine = await startRedisEngine();
  const settings = engine.engineSettings();
  await engine.server.kill9();
  const store = new ArenaKvNode("redis-down");
  let started: Awaited<ReturnType<typeof startOn>> | undefined;
  try {
    started = await startOn({ name: "down", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }, store);
    const { ingest, compiled } = started;
    await eventually("reconnecting", () => ingest.status()[0]!.state === "reconnecting");
    expect(ingest.status()[0]!.lastError).toStartWith("start: ");
    await engine.server.restart();
    await eventually("running", () => ingest.status()[0]!.state === "running");
    expect(ingest.status()[0]!.lastError).toBeNull();
    const publisher = await openPublisher(compiled);
    await publisher.publish([event("r1")]);
    await publisher.close();
    await eventually("written", () => ingest.status()[0]!.written === 1);
  } finally {
    await started?.ingest.stop();
    await engine.stop();
  }
}, 60_000);

test("NATS down at start: the start returns, the consumer is reconnecting with the error, and consumes once the server is there", async () => {
  const port = await freePort();
  const stream = `EVENTS_DOWN_${process.pid}`;
  const def: SourceDef = { name: "down", engine: "nats", nats: { servers: `nats://127.0.0.1:${port}`, stream, consumer: "quiver", subject: `${stream.toLowerCase()}.events` }, format: "json", batchSize: 10, mappings: [paymentsMapping()] };
  const store = new ArenaKvNode("nats-down");
  const started = await startOn(def, store);
  const { ingest, compiled } = started;
  let server: Awaited<ReturnType<typeof startNats>> | undefined;
  try {
    await eventually("reconnecting", () => ingest.status()[0]!.state === "reconnecting");
    expect(ingest.status()[0]!.lastError).toStartWith("start: ");
    server = await startNats({ port });
    await eventually("running", () => ingest.status()[0]!.state === "running");
    const publisher = await openPublisher(compiled);
    await publisher.publish([event("n1")]);
    await publisher.close();
    await eventually("written", () => ingest.status()[0]!.written === 1);
  } finally {
    await ingest.stop();
    await server?.stop();
  }
}, 60_000);
