import { beforeAll, expect, test } from "bun:test";
import type { CompiledSource } from "../src/ingest/compile-sources.ts";
import type { NewDeadLetter } from "../src/ingest/dead-letters.ts";
import { IdempotencyWindow } from "../src/ingest/idempotency-window.ts";
import { IngestMetrics } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import { StreamConsumer } from "../src/ingest/stream-consumer.ts";
import type { Delivery, SourceLag, StreamSource } from "../src/ingest/stream-source.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { StorageError } from "../src/kv/storage-errors.ts";
import { RefusingNode } from "./support/refusing-node.ts";

/**
 * Messages that never get a verdict: the durable's max_deliver is unlimited
 * and only this process's memory counted failures, so a message whose
 * handling threw, or that crashed or hung a process (its count lost with it),
 * came back forever. A scripted source stands in for the engine: it hands a
 * message back with its delivery count one higher after each retryLater.
 */
class ScriptedSource implements StreamSource {
  readonly name = "scripted";
  readonly engine = "redis" as const;
  private queue: Delivery[] = [];
  readonly acked: string[] = [];
  readonly rejected: string[] = [];
  reads = 0;
  constructor(deliveries: Delivery[]) {
    this.queue = deliveries;
  }
  async start(): Promise<void> {}
  async read(max: number, waitMs: number): Promise<readonly Delivery[]> {
    this.reads++;
    if (this.queue.length === 0) {
      await Bun.sleep(Math.min(waitMs, 5));
      return [];
    }
    return this.queue.splice(0, max);
  }
  async ack(ds: readonly Delivery[]): Promise<void> {
    this.acked.push(...ds.map((d) => d.id));
  }
  async reject(ds: readonly Delivery[]): Promise<void> {
    this.rejected.push(...ds.map((d) => d.id));
  }
  async retryLater(ds: readonly Delivery[]): Promise<void> {
    this.queue.push(...ds.map((d) => ({ ...d, deliveries: d.deliveries + 1 })));
  }
  async handBack(ds: readonly Delivery[]): Promise<void> {
    await this.retryLater(ds);
  }
  async lag(): Promise<SourceLag> {
    return { pending: 0, unprocessed: 0, lostUnread: null, lostPending: null };
  }
  async close(): Promise<void> {}
}

const HOUR = 3600_000;
let compiled: CompiledSource;
beforeAll(async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  compiled = compileSources(
    { sources: [{ name: "scripted", engine: "redis", redis: { url: "redis://127.0.0.1:1", stream: "s", group: "g" }, format: "json", batchSize: 10, maxDeliver: 3, mappings: [paymentsMapping()] }] },
    registry,
  )[0]!;
}, 30_000);

const payload = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));

function consumerOn(source: StreamSource, store: ArenaKvNode | RefusingNode, options: { clock?: () => number } = {}, on: CompiledSource = compiled) {
  const letters: NewDeadLetter[] = [];
  const deadLetters = {
    add: async (l: readonly NewDeadLetter[]) => {
      letters.push(...l);
      return 0;
    },
    list: async () => [],
    remove: async () => undefined,
    close: async () => undefined,
  };
  const consumer = new StreamConsumer(
    { source, compiled: on, deadLetters, push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), seen: new IdempotencyWindow(0) },
    { readWaitMs: 5, lagIntervalMs: 1000, pauseMs: { initial: 1, max: 2 }, writeAttempts: 1, ...options },
  );
  return { consumer, letters };
}

test("a message whose handling throws is counted like a refusal: dead-lettered at maxDeliver with the error, not retried forever", async () => {
  const source = new ScriptedSource([{ id: "1-0", payload: payload("t1"), deliveries: 1, publishedAt: Date.now() }]);
  const { consumer, letters } = consumerOn(source, new ArenaKvNode("throws"));
  // A bug in handling: the mapper throws for this batch (nothing else in the consumer can be made to throw on cue).
  (consumer as unknown as { mapper: { map(): never } }).mapper = {
    map: () => {
      throw new Error("boom in mapping");
    },
  };
  await consumer.start();
  try {
    await eventually("dead-lettered", () => source.rejected.length > 0, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(source.rejected).toEqual(["1-0"]);
  expect(letters.map((l) => l.reason)).toEqual(["delivery_limit"]);
  expect(letters[0]!.error).toContain("failed 3 times");
  expect(letters[0]!.error).toContain("boom in mapping");
}, 30_000);

test("a message delivered past maxDeliver and published longer than retryFor ago is dead-lettered when read again, though this process counted nothing", async () => {
  const now = Date.now();
  const source = new ScriptedSource([
    // A message that crashed earlier processes: delivered 7 times over 7 hours, no failure counted here.
    { id: "old-crasher", payload: payload("o1"), deliveries: 7, publishedAt: now - 7 * HOUR },
    // Delivered as often but recently (an outage's retries): handled.
    { id: "young", payload: payload("y1"), deliveries: 7, publishedAt: now - 60_000 },
    // Old but first delivered now (a backlog): handled.
    { id: "old-first", payload: payload("f1"), deliveries: 1, publishedAt: now - 7 * HOUR },
  ]);
  const { consumer, letters } = consumerOn(source, new ArenaKvNode("backstop"));
  await consumer.start();
  try {
    await eventually("settled", () => source.acked.length + source.rejected.length === 3, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(source.rejected).toEqual(["old-crasher"]);
  expect(source.acked.sort()).toEqual(["old-first", "young"]);
  expect(letters.map((l) => [l.origin, l.reason])).toEqual([["old-crasher", "delivery_limit"]]);
  expect(letters[0]!.error).toContain("past retryFor");
  expect(consumer.status().written).toBe(2);
}, 30_000);

test("while the store refuses writes for a reason of its own, old messages are retried, not dead-lettered for their age", async () => {
  const store = new RefusingNode(new ArenaKvNode("outage"));
  store.refusing = true;
  // Not yet past retryFor at the first read; the clock then runs 7 hours on while the store stays down.
  let clock = Date.now();
  const source = new ScriptedSource([{ id: "during-outage", payload: payload("d1"), deliveries: 1, publishedAt: clock }]);
  const { consumer, letters } = consumerOn(source, store, { clock: () => clock });
  await consumer.start();
  try {
    await eventually("refused once", () => source.reads > 2 && consumer.status().state === "paused", 10_000);
    clock += 7 * HOUR;
    const reads = source.reads;
    await eventually("read again several times", () => source.reads > reads + 10, 10_000);
    expect(letters).toEqual([]);
    store.refusing = false;
    await eventually("written once the store is back", () => source.acked.length === 1, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(letters).toEqual([]);
  expect(source.rejected).toEqual([]);
}, 30_000);

test("a batch the store refuses for a reason that may be its own counts failures only for events it wrote: filtered events and duplicates are acked, never dead-lettered", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const [filtering] = compileSources(
    {
      sources: [
        {
          name: "scripted",
          engine: "redis",
          redis: { url: "redis://127.0.0.1:1", stream: "s", group: "g" },
          format: "json",
          batchSize: 10,
          maxDeliver: 2,
          mappings: [paymentsMapping({ idempotencyKey: "id", filter: { path: "kind", equals: "payment" } })],
        },
      ],
    },
    registry,
  );
  const event = (customer: string, kind: string, id: string) => new TextEncoder().encode(JSON.stringify({ customer, kind, id, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));
  const store = new RefusingNode(new ArenaKvNode("refused-batch"));
  store.refusing = false;
  const source = new ScriptedSource([{ id: "1-0", payload: event("seen", "payment", "k-seen"), deliveries: 1, publishedAt: Date.now() }]);
  const { consumer, letters } = consumerOn(source, store, {}, filtering!);
  await consumer.start();
  try {
    await eventually("the first event written", () => consumer.status().written === 1, 10_000);
    // From now on the store refuses with an error that is not marked retryable: it may be the events' own.
    store.refusal = () => new Error("value rejected by the store");
    store.refusing = true;
    await source.retryLater([
      { id: "2-0", payload: event("w", "payment", "k-w"), deliveries: 0, publishedAt: Date.now() },
      { id: "3-0", payload: event("f", "refund", "k-f"), deliveries: 0, publishedAt: Date.now() },
      { id: "4-0", payload: event("again", "payment", "k-seen"), deliveries: 0, publishedAt: Date.now() },
    ]);
    await eventually("the refused event dead-lettered", () => source.rejected.length > 0, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(letters.map((l) => [l.origin, l.reason])).toEqual([["2-0", "delivery_limit"]]);
  expect(source.rejected).toEqual(["2-0"]);
  expect(source.acked.sort()).toEqual(["1-0", "3-0", "4-0"]);
  const status = consumer.status();
  expect([status.filtered, status.duplicate, status.deadLettered]).toEqual([1, 1, 1]);
}, 30_000);

test("a message whose publication time the engine cannot tell is dead-lettered retryFor after this consumer first saw it (injected clock)", async () => {
  // A Redis entry a producer added with its own id (`1-1`): its id says nothing of when it was added. Taken for a time
  // it made every message 56 years old; left without one, such a message was never dead-lettered for its age.
  let clock = Date.now();
  const source = new ScriptedSource([{ id: "1-1", payload: payload("u1"), deliveries: 7 }]);
  const store = new RefusingNode(new ArenaKvNode("unknown-age"));
  // A refusal that may be the event's own (counted, 1 of maxDeliver 3); the clock runs 7 hours on meanwhile.
  store.refusal = () => {
    clock += 7 * HOUR;
    return new Error("value rejected by the store");
  };
  const { consumer, letters } = consumerOn(source, store, { clock: () => clock });
  await consumer.start();
  try {
    await eventually("dead-lettered", () => source.rejected.length > 0, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(store.refusedWrites).toBe(1);
  expect(letters.map((l) => [l.origin, l.reason])).toEqual([["1-1", "delivery_limit"]]);
  expect(letters[0]!.error).toContain("delivered 8 times over 420 min since this consumer first saw it");
  expect(letters[0]!.error).toContain("past retryFor (360 min)");
}, 30_000);

test("first deliveries whose publication time the engine cannot tell leave no first sighting behind: a batch another pod takes over is not remembered", async () => {
  // Every entry of a producer that picks its own ids (a sequence, seconds) was put in the first-sight map on its
  // first delivery and taken out once settled (a Map set and delete per event, ~300 ns at ~100k events/s); one another
  // pod took over (handed back, claimed) stayed until 100,000 had piled up. Only a message that comes back counts now.
  class ClaimedElsewhere extends ScriptedSource {
    readonly handedBack: string[] = [];
    override async handBack(ds: readonly Delivery[]): Promise<void> {
      this.handedBack.push(...ds.map((d) => d.id));
    }
  }
  const source = new ClaimedElsewhere(Array.from({ length: 200 }, (_, i) => ({ id: `${i}-1`, payload: payload(`c${i}`), deliveries: 1 })));
  const store = new RefusingNode(new ArenaKvNode("stale-ring"));
  // This pod's ring is stale: each batch is handed back for a pod on the new ring to write.
  store.refusal = () => new StorageError("placement_stale", "not written: this pod's ring is stale", true);
  const { consumer, letters } = consumerOn(source, store);
  await consumer.start();
  try {
    await eventually("all handed back", () => source.handedBack.length === 200, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(letters).toEqual([]);
  expect((consumer as unknown as { firstSeen: Map<string, number> }).firstSeen.size).toBe(0);
}, 30_000);

test("a cut delivery whose handling keeps throwing is dead-lettered at maxDeliver still marked cut: its letter is never replayed as the event", async () => {
  // A too_large delivery holds only its first bytes; the delivery_limit letter written from it dropped its cutFrom.
  const cut = { reason: "too_large" as const, path: "", error: "the message's payload is 100000 bytes, over maxEventBytes (65536)", cutFrom: 100_000 };
  const source = new ScriptedSource([{ id: "9-0", payload: payload("t9"), deliveries: 1, publishedAt: Date.now(), unreadable: cut }]);
  const { consumer, letters } = consumerOn(source, new ArenaKvNode("throws-cut"));
  (consumer as unknown as { mapper: { map(): never } }).mapper = {
    map: () => {
      throw new Error("boom in mapping");
    },
  };
  await consumer.start();
  try {
    await eventually("dead-lettered", () => source.rejected.length > 0, 10_000);
  } finally {
    await consumer.stop();
  }
  expect(letters.map((l) => [l.reason, l.cutFrom])).toEqual([["delivery_limit", 100_000]]);
}, 30_000);
