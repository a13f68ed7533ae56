import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "nats";
import { IngestMetrics, IngestService, openDeadLetters, openPublisher, openStreamSource } from "../src/ingest/index.ts";
import { subjectCovers } from "../src/ingest/nats-stream-source.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import type { SourceDef } from "../src/ingest/sources-definitions.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile, type Registry } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { freePort } from "../shards/redis-conf.ts";
import { eventually, makeRig, paymentsMapping } from "./stream-source-contract.ts";
import { RefusingNode } from "./support/refusing-node.ts";
import { startNatsEngine } from "./support/stream-engines.ts";

/**
 * JetStream keeps a durable consumer's settings on the server: a sources file
 * whose delivery limit or ack wait changed must change them there too, or the
 * server stops redelivering at its old limit while the consumer waits for the
 * new one before it dead-letters (a message dropped with no letter). Real
 * nats-server -js.
 */
test("subjectCovers: literal tokens, * for one token, > for the rest", () => {
  expect(subjectCovers("events.a", "events.a")).toBe(true);
  expect(subjectCovers("events.*", "events.a")).toBe(true);
  expect(subjectCovers("events.>", "events.a.b")).toBe(true);
  expect(subjectCovers(">", "events")).toBe(true);
  expect(subjectCovers("events.*", "events.a.b")).toBe(false);
  expect(subjectCovers("events.>", "events")).toBe(false);
  expect(subjectCovers("events.a", "events.b")).toBe(false);
  expect(subjectCovers("events.a", "events.*")).toBe(false);
  expect(subjectCovers("events.*", "events.>")).toBe(false);
  expect(subjectCovers("events.>", "events.*")).toBe(true);
});

describe("NATS sources and the stream and durable consumer the server keeps", () => {
  let engine: Awaited<ReturnType<typeof startNatsEngine>>;
  let registry: Registry;
  let nc: NatsConnection;
  beforeAll(async () => {
    engine = await startNatsEngine();
    registry = await loadRegistryFile("src/registry/example-registry.yaml");
    nc = await connect({ servers: engine.server.url });
  }, 60_000);
  afterAll(async () => {
    await nc?.drain().catch(() => undefined);
    await engine?.stop();
  }, 60_000);

  test("the durable's max_deliver is unlimited (an old limited one is lifted) and ack_wait follows the sources file; a message the store keeps refusing is dead-lettered by the consumer at the source's limit", async () => {
    const settings = engine.engineSettings({ takeoverMs: 30_000 });
    const def = (maxDeliver: number, ackWait: string): SourceDef => ({
      name: "changing",
      ...settings,
      nats: { ...settings.nats!, ackWait },
      format: "json",
      batchSize: 10,
      maxDeliver,
      mappings: [paymentsMapping()],
    });
    const store = new RefusingNode(new ArenaKvNode("nats-settings"));
    const start = (d: SourceDef) =>
      IngestService.start(compileSources({ sources: [d] }, registry), {
        push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
        store,
        metrics: new IngestMetrics(new MetricsRegistry()),
        consumerName: "c1",
        consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, writeAttempts: 1, pauseMs: { initial: 50, max: 100 } },
      });
    // First run: the durable is made; then it is set as an older version left it, limited to 1 delivery, 30 s ack wait.
    await (await start(def(1, "30s"))).stop();
    const consumerName = settings.nats!.consumer;
    const stream = settings.nats!.stream;
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.update(stream, consumerName, { max_deliver: 1 });
    expect((await jsm.consumers.info(stream, consumerName)).config.max_deliver).toBe(1);

    // The sources file now allows 3 deliveries and a 5 s ack wait (long beside a delivery's handling here, so no
    // message comes back by its ack wait while it is being handled).
    const [compiled] = compileSources({ sources: [def(3, "5s")] }, registry);
    const ingest = await start(def(3, "5s"));
    const deadLetters = await openDeadLetters(compiled!);
    const publisher = await openPublisher(compiled!);
    try {
      const config = (await jsm.consumers.info(stream, consumerName)).config;
      expect(config.max_deliver).toBe(-1);
      expect(config.ack_wait).toBe(5000 * 1_000_000);
      // A store that refuses every write: the event is handed back twice, then dead-lettered on its third delivery
      // (with the old limit left on the server, JetStream would stop after the first and no letter would come).
      store.refusal = () => new Error("the store refused this row");
      await publisher.publish([new TextEncoder().encode(JSON.stringify({ customer: "n1", amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }))]);
      await eventually("the event's delivery_limit letter", async () => (await deadLetters.list(10)).length === 1, 20_000);
      const [letter] = await deadLetters.list(10);
      expect(letter!.reason).toBe("delivery_limit");
      expect(letter!.error).toContain("delivered 3 times");
      expect(store.refusedWrites).toBe(3);
    } finally {
      await ingest.stop();
      await deadLetters.close();
      await publisher.close();
    }
  }, 60_000);

  test("messages at the source's delivery limit that a stopping consumer never settled are delivered again to the next one, not dropped by the server", async () => {
    // maxDeliver 1: every first delivery is the last the source allows. JetStream limited to it (as the durable was)
    // never delivered again a message handed back by close() or left to ack_wait: neither written nor dead-lettered.
    const settings = engine.engineSettings({ takeoverMs: 500 });
    const [compiled] = compileSources({ sources: [{ name: "at-limit", ...settings, format: "json", batchSize: 10, maxDeliver: 1, mappings: [paymentsMapping()] }] }, registry);
    const publisher = await openPublisher(compiled!);
    const event = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));
    await publisher.publish([event("a"), event("b"), event("c")]);
    await publisher.close();
    const first = await openStreamSource(compiled!, "c1");
    await first.start();
    // One handed out and never settled (a consumer stopped mid-batch), the rest buffered in the client, nak'd by close.
    const taken = await first.read(1, 5000);
    expect(taken.map((d) => d.deliveries)).toEqual([1]);
    await first.close();
    const second = await openStreamSource(compiled!, "c2");
    await second.start();
    const seen = new Set<string>();
    try {
      await eventually(
        "every message delivered again",
        async () => {
          const batch = await second.read(10, 200);
          for (const d of batch) seen.add(JSON.parse(new TextDecoder().decode(d.payload)).customer);
          await second.ack(batch);
          return seen.size === 3;
        },
        20_000,
      );
    } finally {
      await second.close();
    }
    expect([...seen].sort()).toEqual(["a", "b", "c"]);
  }, 60_000);

  test("messages pulled ahead wait their turn past ack_wait without being delivered again", async () => {
    // The consumer is busy with its batch (here: does not read) for three ack waits while consume() has pulled the
    // next ones into the client's queue. They used to be delivered again meanwhile, each copy processed.
    // A 1.5 s ack wait: keep-alives go every 500 ms, so an event-loop stall of up to ~1 s (a loaded CI machine)
    // does not let one lapse (at 500 ms, with keep-alives every 166 ms, a 330 ms stall could).
    const settings = engine.engineSettings({ takeoverMs: 1500 });
    const [compiled] = compileSources({ sources: [{ name: "queued", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
    const publisher = await openPublisher(compiled!);
    const event = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));
    await publisher.publish(Array.from({ length: 30 }, (_, i) => event(`q${i}`)));
    await publisher.close();
    const source = await openStreamSource(compiled!, "c1");
    await source.start();
    const seen: Array<{ id: string; deliveries: number }> = [];
    try {
      const first = await source.read(10, 5000);
      for (const d of first) seen.push({ id: d.id, deliveries: d.deliveries });
      await source.ack(first);
      await Bun.sleep(4500);
      await eventually(
        "every message read",
        async () => {
          const batch = await source.read(10, 200);
          for (const d of batch) seen.push({ id: d.id, deliveries: d.deliveries });
          await source.ack(batch);
          return new Set(seen.map((s) => s.id)).size === 30;
        },
        20_000,
      );
      // Whatever was still queued when the last was read comes only if it was delivered again.
      const late = await source.read(30, 300);
      for (const d of late) seen.push({ id: d.id, deliveries: d.deliveries });
      await source.ack(late);
    } finally {
      await source.close();
    }
    expect(seen.filter((s) => s.deliveries > 1)).toEqual([]);
    expect(seen.length).toBe(30);
  }, 60_000);

  test("max_ack_pending is 4 batches unless nats.maxAckPending says otherwise, and follows the sources file", async () => {
    const settings = engine.engineSettings();
    const def = (maxAckPending?: number): SourceDef => ({
      name: "pending",
      ...settings,
      nats: { ...settings.nats!, ...(maxAckPending === undefined ? {} : { maxAckPending }) },
      format: "json",
      batchSize: 10,
      mappings: [paymentsMapping()],
    });
    const store = new ArenaKvNode("nats-pending");
    const startStop = async (d: SourceDef) =>
      (await IngestService.start(compileSources({ sources: [d] }, registry), { push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), consumerName: "c1" })).stop();
    const jsm = await nc.jetstreamManager();
    const pending = async () => (await jsm.consumers.info(settings.nats!.stream, settings.nats!.consumer)).config.max_ack_pending;
    await startStop(def());
    expect(await pending()).toBe(40);
    await startStop(def(1000));
    expect(await pending()).toBe(1000);
  }, 60_000);

  test("a dead-letter stream that went away (deleted, a server restarted empty) is made again by the next letter", async () => {
    const settings = engine.engineSettings();
    const [compiled] = compileSources({ sources: [{ name: "dlq-gone", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
    const deadLetters = await openDeadLetters(compiled!);
    try {
      const jsm = await nc.jetstreamManager();
      const dlq = compiled!.nats?.deadLetterStream ?? "";
      await jsm.streams.delete(dlq);
      // Every letter failed from here on (503, no stream takes the subject), and the events left at the delivery limit.
      const payload = new TextEncoder().encode("{not json");
      await deadLetters.add([{ source: "dlq-gone", reason: "undecodable", path: "", error: "bad", payload, origin: "1" }]);
      const letters = await deadLetters.list(10, { source: "dlq-gone" });
      expect(letters.map((l) => [l.reason, new TextDecoder().decode(l.payload)])).toEqual([["undecodable", "{not json"]]);
    } finally {
      await deadLetters.close();
    }
  }, 60_000);

  test("sources sharing a stream, each with its own subject, all consume: the stream takes every source's subject", async () => {
    const a = engine.engineSettings();
    const stream = a.nats!.stream;
    const src = (name: string, subject: string): SourceDef => ({ name, engine: "nats", nats: { servers: engine.server.url, stream, consumer: name, subject }, format: "json", batchSize: 10, mappings: [paymentsMapping()] });
    const sources = [src("first", `${stream.toLowerCase()}.first`), src("second", `${stream.toLowerCase()}.second`)];
    const compiled = compileSources({ sources }, registry);
    const store = new ArenaKvNode("nats-shared");
    const ingest = await IngestService.start(compiled, { push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), consumerName: "c1", consumerOptions: { readWaitMs: 100, lagIntervalMs: 100 } });
    const publishers = await Promise.all(compiled.map((c) => openPublisher(c)));
    try {
      const ts = Date.now() - 1000;
      await publishers[0]!.publish([new TextEncoder().encode(JSON.stringify({ customer: "f1", amount: 1, count: 1, chargeback: false, ts }))]);
      await publishers[1]!.publish([new TextEncoder().encode(JSON.stringify({ customer: "s1", amount: 2, count: 1, chargeback: false, ts }))]);
      await eventually("each source wrote its event", () => ingest.status().every((s) => s.written === 1));
      const jsm = await nc.jetstreamManager();
      expect((await jsm.streams.info(stream)).config.subjects.sort()).toEqual(sources.map((s) => s.nats!.subject).sort());
    } finally {
      await ingest.stop();
      await Promise.all(publishers.map((p) => p.close()));
    }
  }, 60_000);

  test("a stream deleted under a running consumer and made again: the durable is made again and consuming goes on", async () => {
    const settings = engine.engineSettings();
    const compiled = compileSources({ sources: [{ name: "remade", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
    const store = new ArenaKvNode("nats-remade");
    const ingest = await IngestService.start(compiled, { push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), consumerName: "c1", consumerOptions: { readWaitMs: 100, lagIntervalMs: 100 } });
    const event = (customer: string) => new TextEncoder().encode(JSON.stringify({ customer, amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }));
    let publisher = await openPublisher(compiled[0]!);
    try {
      await publisher.publish([event("m1")]);
      await eventually("the first event written", () => ingest.status()[0]!.written === 1);
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(settings.nats!.stream);
      // A producer connecting afresh makes the stream again (openPublisher does, as `ingest:produce` would).
      await publisher.close();
      publisher = await openPublisher(compiled[0]!);
      // The producer sends a new event every second until one is written: what is checked is that consuming goes on.
      // (Made again at once, under load, the durable sometimes sat on a stream nats-server 2.9 was still removing and
      // never got another message, however many came; the source now waits REATTACH_DELAY_MS first.)
      let sent = 1;
      await eventually(
        "an event on the remade stream written",
        async () => {
          if (ingest.status()[0]!.written > 1) return true;
          if (sent < 25) await publisher.publish([event(`m${++sent}`)]);
          await Bun.sleep(1000);
          return ingest.status()[0]!.written > 1;
        },
        30_000,
      );
      expect(ingest.status()[0]!.lastError).toBeNull();
    } finally {
      await publisher.close();
      await ingest.stop();
    }
  }, 60_000);

  test("a durable that filters another subject is refused at start with what to do, not consumed", async () => {
    const settings = engine.engineSettings();
    const base: SourceDef = { name: "moved", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] };
    const store = new ArenaKvNode("nats-subject");
    const start = (d: SourceDef) =>
      IngestService.start(compileSources({ sources: [d] }, registry), { push: new PushService(store, { maxFutureSkewMs: 3_600_000 }), store, metrics: new IngestMetrics(new MetricsRegistry()), consumerName: "c1" });
    await (await start(base)).stop();
    // Same stream and durable, another subject: JetStream cannot change a durable's filter before 2.10.
    const moved: SourceDef = { ...base, nats: { ...settings.nats!, subject: `${settings.nats!.subject}.v2` } };
    let error: Error | undefined;
    try {
      await (await start(moved)).stop();
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).toContain(`durable consumer "${settings.nats!.consumer}"`);
    expect(error?.message).toContain(`filters subject "${settings.nats!.subject}"`);
    expect(error?.message).toContain(`"${settings.nats!.subject}.v2"`);
  }, 60_000);

  test("a NATS server that stops answering shows the consumer reconnecting, and running again once it answers", async () => {
    const settings = engine.engineSettings();
    const [compiled] = compileSources({ sources: [{ name: "outage", ...settings, format: "json", batchSize: 10, mappings: [paymentsMapping()] }] }, registry);
    const store = new ArenaKvNode("nats-outage");
    const ingest = await IngestService.start([compiled!], {
      push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
      store,
      metrics: new IngestMetrics(new MetricsRegistry()),
      consumerName: "c1",
      consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 100, max: 200 } },
    });
    const pid = engine.server.pid;
    try {
      await eventually("running", () => ingest.status()[0]!.state === "running");
      process.kill(pid, "SIGSTOP");
      // It said `running` with no error throughout a 10 s outage.
      await eventually("reconnecting", () => ingest.status()[0]!.state === "reconnecting", 30_000);
      expect(ingest.status()[0]!.lastError).toContain("the NATS server does not answer");
      process.kill(pid, "SIGCONT");
      await eventually("running again", () => ingest.status()[0]!.state === "running" && ingest.status()[0]!.lastError === null, 30_000);
      const publisher = await openPublisher(compiled!);
      try {
        await publisher.publish([new TextEncoder().encode(JSON.stringify({ customer: "back", amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000 }))]);
      } finally {
        await publisher.close();
      }
      await eventually("written after the outage", () => ingest.status()[0]!.written === 1, 30_000);
    } finally {
      process.kill(pid, "SIGCONT");
      await ingest.stop();
    }
  }, 90_000);
  test("servers is a seed list: a comma-separated list reaches the live server wherever it stands in it", async () => {
    // nats.js read the text as one server, everything up to the last "://" stripped: with the live server first and
    // a down one last, the source, its publisher and its dead letters were refused (CONNECTION_REFUSED) for good.
    const down = `nats://127.0.0.1:${await freePort()}`;
    const settings = engine.engineSettings({});
    const rig = await makeRig();
    const [compiled] = rig.compile([{ name: "seeded", ...settings, nats: { ...settings.nats!, servers: `${engine.server.url}, ${down}` }, batchSize: 10, mappings: [paymentsMapping()] }]);
    const deadLetters = await openDeadLetters(compiled!);
    const publisher = await openPublisher(compiled!);
    const ingest = await rig.start([compiled!]);
    try {
      await publisher.publish([new TextEncoder().encode(JSON.stringify({ customer: "seeded", amount: 3, count: 1, chargeback: false, ts: Date.now() - 1000 }))]);
      await eventually("written", async () => (await rig.row("seeded")) !== undefined);
      expect(ingest.status()[0]).toMatchObject({ state: "running", written: 1, lastError: null });
      expect(await deadLetters.list(10)).toEqual([]);
    } finally {
      await ingest.stop();
      await publisher.close();
      await deadLetters.close();
    }
  }, 60_000);
});
