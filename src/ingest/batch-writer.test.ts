import { expect, test } from "bun:test";
import { ForwardingKvNode, type KvEntry, MemoryKvNode, type ReadSlot, type ReadsNow, UNAVAILABLE } from "../kv/index.ts";
import { MetricsRegistry } from "../ops/index.ts";
import { loadRegistryFile } from "../registry/index.ts";
import { PushService } from "../serving/index.ts";
import { BatchMapper } from "./batch-mapper.ts";
import { BatchWriter, type PreparedBatch } from "./batch-writer.ts";
import { IdempotencyWindow, scopedKey } from "./idempotency-window.ts";
import { IngestMetrics } from "./ingest-metrics.ts";
import { compileSources } from "./read-sources.ts";
import type { Delivery } from "./stream-source.ts";

/** A store whose reads cannot answer (a shard timed out, say) while its writes go through. */
class UnreadableStore extends ForwardingKvNode {
  override get readsNow(): ReadsNow {
    return "never";
  }
  override getManyNow(): undefined {
    return undefined;
  }
  override async getMany(keys: readonly string[]): Promise<ReadSlot[]> {
    return keys.map(() => UNAVAILABLE);
  }
}

const entry = (key: string, ts: number, v: number): KvEntry => ({ key, row: { ts, values: [v] } });
const batchOf = (entries: KvEntry[]): PreparedBatch => ({ entries, views: entries.map(() => "v"), versions: entries.map(() => 1), idempotencyKeys: entries.map(() => undefined), from: [], dead: [] });

function writerOn(store: MemoryKvNode | UnreadableStore): BatchWriter {
  const counters = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false })).forSource("s");
  return new BatchWriter("s", "s", new PushService(store, { maxFutureSkewMs: 60_000 }), store, new IdempotencyWindow(60_000), counters, () => 10_000);
}

test("replays and late events are told apart whether or not the stored rows could be read first", async () => {
  for (const readable of [true, false]) {
    const memory = new MemoryKvNode("m");
    await memory.putMany([entry("v/k=a", 100, 1), entry("v/k=b", 100, 1)]);
    const writer = writerOn(readable ? memory : new UnreadableStore(memory));
    // a: the stored event again (a redelivery); b: older than stored; c: new.
    const result = await writer.write(batchOf([entry("v/k=a", 100, 1), entry("v/k=b", 50, 2), entry("v/k=c", 100, 3)]));
    expect({ readable, ...result }).toEqual({ readable, written: 1, duplicate: 1, late: 1 });
    expect(await memory.getMany(["v/k=a", "v/k=b", "v/k=c"])).toEqual([
      { ts: 100, values: [1] },
      { ts: 100, values: [1] },
      { ts: 100, values: [3] },
    ]);
  }
});

test("an event the push path refuses for one of its views is dead-lettered whole: none of its views gets a row", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  // One event feeds two views: fraud_signals by `customer` (a string key), driver_hourly_stats by `driver` (int64).
  const [source] = compileSources(
    {
      sources: [
        {
          name: "two-views",
          engine: "redis",
          redis: { url: "redis://127.0.0.1:1", stream: "unused", group: "quiver" },
          mappings: [
            { featureView: "fraud_signals", keys: { customer_id: "customer" }, features: { spend_1h: "amount" }, eventTime: { path: "ts", format: "epoch_ms" } },
            { featureView: "driver_hourly_stats", keys: { driver_id: "driver" }, features: { conv_rate: "rate" }, eventTime: { path: "ts", format: "epoch_ms" } },
          ],
        },
      ],
    },
    registry,
  );
  const store = new MemoryKvNode("m");
  const counters = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false })).forSource("two-views");
  const seen = new IdempotencyWindow(60_000);
  const mapper = new BatchMapper(source!, seen);
  const writer = new BatchWriter("two-views", "two-views", new PushService(store, { maxFutureSkewMs: 60_000 }), store, seen, counters, () => 10_000);
  const delivery = (id: string, o: unknown): Delivery => ({ id, payload: new TextEncoder().encode(JSON.stringify(o)), deliveries: 1 });
  // The driver id "abc" passes the mapper (int64 keys take text, checked by the push path) and fails there.
  const batch = [delivery("1-0", { customer: "good", driver: 1001, amount: 5, rate: 0.5, ts: 5000 }), delivery("2-0", { customer: "bad", driver: "abc", amount: 7, rate: 0.7, ts: 5000 })];
  const mapped = mapper.map(batch);
  expect(mapped.dead).toEqual([]);
  const prepared = writer.prepare(mapped.groups);
  expect(prepared.dead.map((d) => [d.delivery.id, d.letter.reason, d.letter.path])).toEqual([["2-0", "invalid_value", "driver"]]);
  expect(prepared.dead[0]!.letter.error).toContain('(maps to "driver_id")');
  // The good event's two rows; nothing of the bad one, not even its valid fraud_signals row.
  expect(prepared.entries.map((e) => e.key).sort()).toEqual(["driver_hourly_stats@1/driver_id=i1001", "fraud_signals@2/customer_id=s4:good"]);
  expect(prepared.views.length).toBe(2);
  expect(prepared.idempotencyKeys.length).toBe(2);
  expect((await writer.write(prepared)).written).toBe(2);
});

test("an idempotency key shared with an event the push path refused does not hide the corrected copy in the same batch", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const [source] = compileSources(
    {
      sources: [
        {
          name: "fixes",
          engine: "redis",
          redis: { url: "redis://127.0.0.1:1", stream: "unused", group: "quiver" },
          mappings: [{ featureView: "fraud_signals", keys: { customer_id: "customer" }, features: { spend_1h: "amount" }, eventTime: { path: "ts", format: "epoch_ms" }, idempotencyKey: "id" }],
        },
      ],
    },
    registry,
  );
  const store = new MemoryKvNode("m");
  const counters = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false })).forSource("fixes");
  const seen = new IdempotencyWindow(60_000);
  const mapper = new BatchMapper(source!, seen);
  // The writer's clock is at 10 s with a 60 s skew limit: an event 2 h ahead is refused by the push path.
  const writer = new BatchWriter("fixes", "fixes", new PushService(store, { maxFutureSkewMs: 60_000 }, () => 10_000), store, seen, counters, () => 10_000);
  const delivery = (id: string, o: unknown): Delivery => ({ id, payload: new TextEncoder().encode(JSON.stringify(o)), deliveries: 1 });
  const batch = [
    delivery("1-0", { id: "evt-1", customer: "c1", amount: 5, ts: 7_200_000 }),
    delivery("2-0", { id: "evt-1", customer: "c1", amount: 6, ts: 5_000 }),
    delivery("3-0", { id: "evt-1", customer: "c1", amount: 7, ts: 6_000 }),
  ];
  const prepared = writer.prepare(mapper.map(batch).groups);
  expect(prepared.dead.map((d) => d.delivery.id)).toEqual(["1-0"]);
  // The corrected copy is written; a third event with the key again is its duplicate.
  expect(prepared.entries.map((e) => e.row.values[0])).toEqual([6]);
  expect(prepared.repeated).toBe(1);
  expect(await writer.write(prepared)).toMatchObject({ written: 1 });
});

test("idempotency keys are remembered per view version: a replay backfilling a bumped version is written, not taken for duplicates", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const mappings = [{ featureView: "fraud_signals", keys: { customer_id: "customer" }, features: { spend_1h: "amount" }, eventTime: { path: "ts", format: "epoch_ms" }, idempotencyKey: "id" }];
  const [source] = compileSources({ sources: [{ name: "replay", engine: "redis", redis: { url: "redis://127.0.0.1:1", stream: "unused", group: "quiver" }, mappings }] }, registry);
  const version = registry.views.get("fraud_signals")!.version;
  const seen = new IdempotencyWindow(60_000);
  // The same event id went to the previous version of the view.
  seen.remember("fraud_signals", scopedKey("replay", version - 1, "evt-1"));
  const mapper = new BatchMapper(source!, seen);
  const delivery = (id: string, o: unknown): Delivery => ({ id, payload: new TextEncoder().encode(JSON.stringify(o)), deliveries: 1 });
  expect(mapper.map([delivery("1-0", { id: "evt-1", customer: "c1", amount: 5, ts: 5_000 })]).groups[0]!.rows).toHaveLength(1);
  seen.remember("fraud_signals", scopedKey("replay", version, "evt-1"));
  const again = mapper.map([delivery("2-0", { id: "evt-1", customer: "c1", amount: 5, ts: 5_000 })]);
  expect(again.groups.flatMap((g) => g.rows)).toHaveLength(0);
  expect(again.duplicate).toBe(1);
});

test("idempotency keys are scoped per source: another source's events with the same ids are written; sources sharing a dedupScope drop each other's copies", async () => {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const mapping = (id: string) => [{ featureView: "fraud_signals", keys: { customer_id: "customer" }, features: { spend_1h: "amount" }, eventTime: { path: "ts", format: "epoch_ms" }, idempotencyKey: id }];
  const redis = (stream: string) => ({ engine: "redis" as const, redis: { url: "redis://127.0.0.1:1", stream, group: "quiver" } });
  const [cards, wallet, mirror] = compileSources(
    {
      sources: [
        { name: "cards", ...redis("cards"), mappings: mapping("event_id") },
        { name: "wallet", ...redis("wallet"), mappings: mapping("paymentId") },
        // The same events as cards, through another engine during a migration: one scope says so.
        { name: "cards_mirror", ...redis("mirror"), dedupScope: "cards", mappings: mapping("event_id") },
      ],
    },
    registry,
  );
  expect([cards!.dedupScope, wallet!.dedupScope, mirror!.dedupScope]).toEqual(["cards", "wallet", "cards"]);
  const store = new MemoryKvNode("scoped");
  const push = new PushService(store, { maxFutureSkewMs: 60_000 }, () => 10_000);
  // One window for every source, as IngestService makes it.
  const seen = new IdempotencyWindow(60_000);
  const metrics = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false }));
  const consume = async (source: typeof cards, deliveries: Delivery[]) => {
    const writer = new BatchWriter(source!.name, source!.dedupScope, push, store, seen, metrics.forSource(source!.name), () => 10_000);
    const mapped = new BatchMapper(source!, seen).map(deliveries);
    const result = await writer.write(writer.prepare(mapped.groups));
    return { ...result, duplicate: result.duplicate + mapped.duplicate };
  };
  const delivery = (id: string, o: unknown): Delivery => ({ id, payload: new TextEncoder().encode(JSON.stringify(o)), deliveries: 1 });
  const ids = Array.from({ length: 20 }, (_, i) => i + 1);
  expect(await consume(cards, ids.map((i) => delivery(`${i}-0`, { event_id: i, customer: `card${i}`, amount: 1, ts: 5_000 })))).toMatchObject({ written: 20 });
  // Other customers, other events, the same integer ids: all 20 were dropped as duplicates of cards' before.
  expect(await consume(wallet, ids.map((i) => delivery(`${i}-0`, { paymentId: i, customer: `wallet${i}`, amount: 2, ts: 5_000 })))).toMatchObject({ written: 20, duplicate: 0 });
  // cards' own events again, re-stamped (a producer's retry) through the mirror: caught by their keys.
  expect(await consume(mirror, ids.map((i) => delivery(`${i}-0`, { event_id: i, customer: `card${i}`, amount: 1, ts: 6_000 })))).toMatchObject({ written: 0, duplicate: 20 });
});
