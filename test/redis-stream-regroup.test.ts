import { expect, test } from "bun:test";
import Redis from "ioredis";
import { IngestMetrics, IngestService, openPublisher, openStreamSource } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { startRedisEngine, useEngine } from "./support/stream-engines.ts";

/**
 * A Redis stream deleted under a running consumer (an operator's DEL, a
 * FLUSHALL in staging) takes its consumer group with it; a producer's next
 * XADD makes the stream again, but not the group, and every read then fails
 * with NOGROUP. The consumer makes the group again and goes on. Real
 * redis-server.
 */
const engine = useEngine(startRedisEngine);

test("a stream deleted and made again by a producer is read again: the consumer group is made again, nothing stays stuck", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const settings = engine().engineSettings();
  const compiled = compileSources({ sources: [{ name: "regroup", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
  const store = new ArenaKvNode("regroup");
  const ingest = await IngestService.start(compiled, {
    push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
    store,
    metrics: new IngestMetrics(new MetricsRegistry()),
    consumerName: "c1",
    consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 50, max: 200 } },
  });
  const publisher = await openPublisher(compiled[0]!);
  const raw = new Redis({ host: engine().server.host, port: engine().server.port });
  const event = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));
  try {
    await publisher.publish([event("r1")]);
    await eventually("the first event written", () => ingest.status()[0]!.written === 1);
    await raw.del(settings.redis!.stream);
    await publisher.publish([event("r2")]);
    await eventually("the event on the remade stream written", () => ingest.status()[0]!.written === 2, 15_000);
    // Written is counted before the batch is settled, and the state turns back to running once it is: wait for that,
    // not for a read's timing (a CI run saw "reconnecting" between the two).
    await eventually("the consumer running again with no error", () => ingest.status()[0]!.state === "running" && ingest.status()[0]!.lastError === null, 15_000);
    expect(ingest.status()[0]!.written).toBe(2);
  } finally {
    raw.disconnect();
    await publisher.close();
    await ingest.stop();
  }
}, 60_000);

test("a read blocked when its stream is deleted comes back empty, not as an error (Redis 7 wakes it with UNBLOCKED)", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const settings = engine().engineSettings();
  const [compiled] = compileSources({ sources: [{ name: "unblocked", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
  const source = await openStreamSource(compiled!, "c1");
  const raw = new Redis({ host: engine().server.host, port: engine().server.port });
  try {
    await source.start();
    const reading = source.read(10, 20_000);
    // Delete the stream once the read is blocked on the server (not before: a read after the delete meets NOGROUP).
    await eventually("the read blocked", async () => /blocked_clients:[1-9]/.test(await raw.info("clients")));
    await raw.del(settings.redis!.stream);
    expect(await reading).toEqual([]);
  } finally {
    raw.disconnect();
    await source.close();
  }
}, 60_000);
