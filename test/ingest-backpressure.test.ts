import { describe, expect, test } from "bun:test";
import { IngestMetrics, IngestService, openDeadLetters, openPublisher } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { PushService } from "../src/serving/index.ts";
import { eventually, paymentsMapping } from "./stream-source-contract.ts";
import { ForwardingKvNode } from "../src/kv/forwarding-node.ts";
import type { KvEntry, PutOutcome } from "../src/kv/kv-node.ts";
import { RefusingNode } from "./support/refusing-node.ts";
import { StorageError } from "../src/kv/storage-errors.ts";
import { startRedisEngine, useEngine } from "./support/stream-engines.ts";

/** A store whose writes never answer (a shard stopped with SIGSTOP), counted. */
class StalledNode extends ForwardingKvNode {
  override readonly id = "stalled";
  writes = 0;
  override putMany(_entries: readonly KvEntry[]): Promise<PutOutcome> {
    this.writes++;
    return new Promise<PutOutcome>(() => {});
  }
}

describe("backpressure and retries", () => {
  const engine = useEngine(startRedisEngine);

  async function rig(maxDeliver: number, events = 40, takeoverMs?: number) {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const store = new RefusingNode(new ArenaKvNode("bp"));
    const [source] = compileSources({ sources: [{ name: "bp", ...engine().engineSettings(takeoverMs === undefined ? {} : { takeoverMs }), batchSize: 20, maxDeliver, mappings: [paymentsMapping()] }] }, registry);
    const ingest = await IngestService.start([source!], {
      push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
      store,
      metrics: new IngestMetrics(new MetricsRegistry()),
      consumerName: "c1",
      consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 100, max: 400 } },
    });
    const publisher = await openPublisher(source!);
    const ts = Date.now() - 1000;
    await publisher.publish(Array.from({ length: events }, (_, i) => new TextEncoder().encode(JSON.stringify({ customer: `bp${i}`, amount: i, count: i, chargeback: false, ts }))));
    await publisher.close();
    return { store, ingest, source: source! };
  }

  test("a refusing store slows and pauses the consumer; nothing is dead-lettered, everything lands once it recovers", async () => {
    const { store, ingest } = await rig(1000);
    try {
      await eventually("the consumer pauses", () => ingest.status()[0]!.state === "paused");
      await Bun.sleep(1500);
      // Bounded retrying, not a spin: three attempts per handling, pauses doubling to 400 ms.
      expect(store.refusedWrites).toBeGreaterThan(2);
      expect(store.refusedWrites).toBeLessThan(60);
      const during = ingest.status()[0]!;
      expect(during.deadLettered).toBe(0);
      expect(during.written).toBe(0);
      expect(during.lastError).toContain("write breaker open");
      store.refusing = false;
      await eventually("every event written", () => ingest.status()[0]!.written === 40);
      await eventually("the group owes nothing", () => {
        const lag = ingest.status()[0]!.lag;
        return lag !== null && lag.pending === 0 && lag.unprocessed === 0;
      });
      expect(ingest.status()[0]!.state).toBe("running");
      expect(ingest.status()[0]!.deadLettered).toBe(0);
    } finally {
      await ingest.stop();
    }
  }, 60_000);

  test("past the delivery limit a message the store keeps refusing for a reason that may be its own is dead-lettered with its last error", async () => {
    const { store, ingest, source } = await rig(2);
    // Not marked retryable: it may be the events' fault.
    store.refusal = () => new Error("write breaker open");
    const deadLetters = await openDeadLetters(source);
    try {
      await eventually("all 40 dead-lettered", () => ingest.status()[0]!.deadLettered === 40);
      const letters = await deadLetters.list(100);
      expect(letters.length).toBe(40);
      for (const l of letters) {
        expect(l.reason).toBe("delivery_limit");
        expect(l.error).toContain("write breaker open");
      }
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 60_000);

  test("a store outage is not the events' fault: retried past the engine's delivery limit, none is dead-lettered; only failures that may be their own count, maxDeliver of them", async () => {
    const { store, ingest, source } = await rig(2, 1);
    const deadLetters = await openDeadLetters(source);
    try {
      // Three write attempts per handling, then the entry is handed back and read again (its delivery count grows):
      // 12 refused writes are 4 handlings, twice the limit. Counted against it, a 20 s outage dead-lettered 50 events.
      await eventually("several rounds refused (or the event dead-lettered)", () => store.refusedWrites >= 12 || ingest.status()[0]!.deadLettered > 0);
      expect(ingest.status()[0]!.deadLettered).toBe(0);
      // Now a refusal that may be the event's own: counted from here, it goes to dead letters at its second.
      const before = store.refusedWrites;
      store.refusal = () => new Error("the store refused this row");
      await eventually("dead-lettered", () => ingest.status()[0]!.deadLettered === 1);
      expect(store.refusedWrites - before).toBe(2);
      const [letter] = await deadLetters.list(10);
      expect(letter!.reason).toBe("delivery_limit");
      expect(letter!.error).toContain("failed 2 times");
      expect(letter!.error).toContain("the store refused this row");
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 60_000);

  test("writes refused because this pod's ring is stale are not the events' fault: none is dead-lettered past the delivery limit", async () => {
    // A short claim idle: the batch is handed back (for another pod to claim), and with no other pod this one claims
    // it again once it has been idle that long.
    const { store, ingest } = await rig(2, 40, 1000);
    store.refusal = () => new StorageError("placement_stale", "not written: this server's ring is not where the keys are", true);
    try {
      await eventually("several rounds refused", () => store.refusedWrites > 8);
      // Counted against their delivery limit, the events were dead-lettered as they came round again.
      expect(ingest.status()[0]!.deadLettered).toBe(0);
      store.refusing = false;
      await eventually("every event written", () => ingest.status()[0]!.written === 40);
      expect(ingest.status()[0]!.deadLettered).toBe(0);
    } finally {
      await ingest.stop();
    }
  }, 60_000);

  test("a pod whose ring is stale hands its batch back: another pod of the group claims and writes it, though the stale pod keeps reading", async () => {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    // claimIdle 2 s; the stale pod's pauses top at 400 ms: re-reading its own pending entries after each reset their
    // idle time, and the healthy pod's XAUTOCLAIM never took them.
    const [source] = compileSources({ sources: [{ name: "stale", ...engine().engineSettings({ takeoverMs: 2000 }), batchSize: 20, mappings: [paymentsMapping()] }] }, registry);
    const pod = async (name: string, store: RefusingNode | ArenaKvNode) =>
      IngestService.start([source!], {
        push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
        store,
        metrics: new IngestMetrics(new MetricsRegistry()),
        consumerName: name,
        consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 100, max: 400 } },
      });
    const staleStore = new RefusingNode(new ArenaKvNode("stale-pod"));
    staleStore.refusal = () => new StorageError("placement_stale", "not written: this server's ring is not where the keys are", true);
    const stale = await pod("stale", staleStore);
    const publisher = await openPublisher(source!);
    const ts = Date.now() - 1000;
    await publisher.publish(Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(JSON.stringify({ customer: `sp${i}`, amount: i, count: i, chargeback: false, ts }))));
    await publisher.close();
    await eventually("the stale pod holds the batch", () => staleStore.refusedRows >= 20);
    const healthy = await pod("healthy", new ArenaKvNode("healthy-pod"));
    try {
      await eventually("the healthy pod wrote every event", () => healthy.status()[0]!.written === 20);
      expect(stale.status()[0]!.written + stale.status()[0]!.deadLettered).toBe(0);
    } finally {
      await stale.stop();
      await healthy.stop();
    }
  }, 60_000);

  test("events of a batch the store refused several times are counted once: consumed, duplicates and filtered", async () => {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const store = new RefusingNode(new ArenaKvNode("counted-once"));
    const mapping = paymentsMapping({ idempotencyKey: "id", filter: { path: "kind", equals: "payment" } });
    const [source] = compileSources({ sources: [{ name: "once", ...engine().engineSettings(), batchSize: 20, mappings: [mapping] }] }, registry);
    const publisher = await openPublisher(source!);
    const ts = Date.now() - 1000;
    const event = (id: string, customer: string, kind = "payment") => new TextEncoder().encode(JSON.stringify({ id, kind, customer, amount: 1, count: 1, chargeback: false, ts }));
    // Five events, all there before the consumer starts (one batch): three written, one repeating an earlier one's key
    // (a duplicate), one filtered out.
    await publisher.publish([event("e1", "o1"), event("e2", "o2"), event("e1", "o1"), event("e3", "o3"), event("e4", "o4", "refund")]);
    await publisher.close();
    const ingest = await IngestService.start([source!], {
      push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
      store,
      metrics: new IngestMetrics(new MetricsRegistry()),
      consumerName: "c1",
      consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, pauseMs: { initial: 50, max: 100 } },
    });
    try {
      // Three handlings refused (three write attempts each), each a delivery of the same events.
      await eventually("three handlings refused", () => store.refusedWrites >= 9);
      store.refusing = false;
      await eventually("written", () => ingest.status()[0]!.written === 3);
      await eventually("the group owes nothing", () => {
        const lag = ingest.status()[0]!.lag;
        return lag !== null && lag.pending === 0 && lag.unprocessed === 0;
      });
      const { consumed, written, duplicate, filtered, deadLettered } = ingest.status()[0]!;
      expect({ consumed, written, duplicate, filtered, deadLettered }).toEqual({ consumed: 5, written: 3, duplicate: 1, filtered: 1, deadLettered: 0 });
    } finally {
      await ingest.stop();
    }
  }, 60_000);

  test("stop with the store stalled gives up the batch in hand after its grace: stop returns, the batch stays owed to the group", async () => {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const store = new StalledNode(new ArenaKvNode("stalled"));
    const [source] = compileSources({ sources: [{ name: "stalled", ...engine().engineSettings(), batchSize: 20, mappings: [paymentsMapping()] }] }, registry);
    const ingest = await IngestService.start([source!], {
      push: new PushService(store, { maxFutureSkewMs: 3_600_000 }),
      store,
      metrics: new IngestMetrics(new MetricsRegistry()),
      consumerName: "c1",
      consumerOptions: { readWaitMs: 100, lagIntervalMs: 100, stopGraceMs: 200 },
    });
    const publisher = await openPublisher(source!);
    const ts = Date.now() - 1000;
    await publisher.publish(Array.from({ length: 5 }, (_, i) => new TextEncoder().encode(JSON.stringify({ customer: `st${i}`, amount: i, count: i, chargeback: false, ts }))));
    await publisher.close();
    await eventually("the batch's write is in the store's hands", () => store.writes > 0);
    // Without the grace this never returned: the write it waited for never answers.
    await ingest.stop();
    const status = ingest.status()[0]!;
    expect(status.state).toBe("stopped");
    expect(status.written).toBe(0);
    // Owed: the batch in hand pending (delivered, not acknowledged), the rest not yet delivered.
    expect((status.lag?.pending ?? 0) + (status.lag?.unprocessed ?? 0)).toBe(5);
    expect(status.lag?.pending).toBeGreaterThan(0);
  }, 60_000);
});
