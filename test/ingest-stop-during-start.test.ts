import { expect, test } from "bun:test";
import { connect } from "nats";
import { IdempotencyWindow } from "../src/ingest/idempotency-window.ts";
import { IngestMetrics, openPublisher, openStreamSource } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import { StreamConsumer } from "../src/ingest/stream-consumer.ts";
import { type Delivery, SourceConfigError, type SourceLag, type StreamSource } from "../src/ingest/stream-source.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { startNatsEngine } from "./support/stream-engines.ts";

/**
 * stop() does not wait for a start that hangs (a stalled engine): it closes
 * the source and returns. The start, finishing later, used to leave a
 * consumer pulling messages and keeping them alive with no one to handle
 * them (the reviewer's scratch/zombie.ts). Now the source refuses to start
 * once closed, and the consumer closes a source whose start it was stopped
 * during.
 */

/** A source whose start() waits until `finishStart()`; counts reads and closes. */
class HeldStart implements StreamSource {
  readonly name = "held";
  readonly engine = "nats" as const;
  reads = 0;
  closes = 0;
  closesAfterStart = 0;
  private started = false;
  private release!: () => void;
  private readonly held = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  finishStart(): void {
    this.release();
  }
  async start(): Promise<void> {
    await this.held;
    this.started = true;
  }
  async read(_max: number, waitMs: number): Promise<readonly Delivery[]> {
    this.reads++;
    await Bun.sleep(Math.min(waitMs, 20));
    return [];
  }
  async ack(): Promise<void> {}
  async reject(): Promise<void> {}
  async retryLater(): Promise<void> {}
  async handBack(): Promise<void> {}
  async lag(): Promise<SourceLag> {
    return { pending: 0, unprocessed: 0, lostUnread: null, lostPending: null };
  }
  async close(): Promise<void> {
    this.closes++;
    if (this.started) this.closesAfterStart++;
  }
}

test("a consumer stopped while its source is still starting closes the source once that start finishes, and never reads", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const [compiled] = compileSources(
    { sources: [{ name: "held", engine: "nats", nats: { servers: "nats://127.0.0.1:1", stream: "HELD", consumer: "quiver", subject: "held.events" }, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] },
    registry,
  );
  const source = new HeldStart();
  const store = new ArenaKvNode("held");
  const deadLetters = { add: async () => undefined, list: async () => [], remove: async () => undefined, close: async () => undefined };
  const consumer = new StreamConsumer(
    { source, compiled: compiled!, deadLetters, push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), seen: new IdempotencyWindow(0) },
    { readWaitMs: 50, lagIntervalMs: 100, stopGraceMs: 0, startWaitMs: 10 },
  );
  await consumer.start();
  // stop() gives up on the hung start after its slack, closing the source meanwhile.
  await consumer.stop();
  expect(consumer.status().state).toBe("stopped");
  source.finishStart();
  await eventually("the source started late is closed", () => source.closesAfterStart > 0, 10_000);
  expect(source.reads).toBe(0);
}, 30_000);

test("NATS: a source closed while it is still connecting refuses to start, and holds no connection, consumer or keep-alive", async () => {
  const engine = await startNatsEngine();
  try {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const [compiled] = compileSources({ sources: [{ name: "zombie", ...engine.engineSettings({ takeoverMs: 1000 }), format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
    // The durable exists (an earlier run made it), so a late start would pull from it at once.
    const first = await openStreamSource(compiled!, "c1");
    await first.start();
    await first.close();

    const source = await openStreamSource(compiled!, "c1");
    const starting = source.start();
    // Closed before the connect (a network round trip) can have finished.
    await source.close();
    await expect(starting).rejects.toThrow("closed while starting");
    const inside = source as unknown as { connection?: unknown; keepAliveTimer?: unknown; messages?: unknown };
    expect(inside.connection).toBeUndefined();
    expect(inside.keepAliveTimer).toBeUndefined();
    expect(inside.messages).toBeUndefined();

    // What is published now goes to the next consumer, not to one left behind by the closed source.
    const publisher = await openPublisher(compiled!);
    await publisher.publish([1, 2, 3].map((i) => new TextEncoder().encode(JSON.stringify({ customer: `z${i}`, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }))));
    await publisher.close();
    const next = await openStreamSource(compiled!, "c1");
    await next.start();
    const got: string[] = [];
    try {
      await eventually("the next consumer reads all three", async () => {
        const batch = await next.read(10, 200);
        for (const d of batch) got.push(d.id);
        await next.ack(batch);
        return got.length === 3;
      });
    } finally {
      await next.close();
    }
    const nc = await connect({ servers: engine.server.url });
    const info = await (await nc.jetstreamManager()).consumers.info(compiled!.nats!.stream, compiled!.nats!.consumer);
    await nc.close();
    expect(info.num_ack_pending).toBe(0);
  } finally {
    await engine.stop();
  }
}, 60_000);

test("an engine that contradicts the sources file after the start wait shows the consumer refused, not reconnecting, and is asked again slowly", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const [compiled] = compileSources(
    { sources: [{ name: "held", engine: "nats", nats: { servers: "nats://127.0.0.1:1", stream: "HELD", consumer: "quiver", subject: "held.events" }, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] },
    registry,
  );
  let starts = 0;
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => {
    answer = resolve;
  });
  const source = new HeldStart();
  // The engine answers only after start() returned (past startWaitMs), and refuses the settings.
  source.start = async () => {
    starts++;
    await answered;
    throw new SourceConfigError("the durable filters another subject");
  };
  const store = new ArenaKvNode("refused");
  const deadLetters = { add: async () => undefined, list: async () => [], remove: async () => undefined, close: async () => undefined };
  const consumer = new StreamConsumer(
    { source, compiled: compiled!, deadLetters, push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), seen: new IdempotencyWindow(0) },
    { readWaitMs: 50, lagIntervalMs: 100, startWaitMs: 10, pauseMs: { initial: 1, max: 60_000 } },
  );
  await consumer.start();
  answer();
  try {
    await eventually("refused", () => consumer.status().state === "refused", 10_000);
    expect(consumer.status().lastError).toBe("start refused: the durable filters another subject");
    // Asked again only after pauseMs.max (60 s here), not with the 1 ms backoff of an unreachable engine.
    await Bun.sleep(100);
    expect(starts).toBe(1);
  } finally {
    await consumer.stop();
  }
}, 30_000);
