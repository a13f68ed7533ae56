import { expect, test } from "bun:test";
import { Encoder } from "@msgpack/msgpack";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { MetricsRegistry } from "../ops/index.ts";
import { loadRegistryFile } from "../registry/index.ts";
import { PushService } from "../serving/index.ts";
import { BatchMapper } from "./batch-mapper.ts";
import { BatchWriter } from "./batch-writer.ts";
import { IdempotencyWindow } from "./idempotency-window.ts";
import { IngestMetrics } from "./ingest-metrics.ts";
import { compileSources } from "./read-sources.ts";
import type { Delivery } from "./stream-source.ts";

/**
 * Streaming ingest keeps int64s exact over their whole range: JSON payloads'
 * integer literals past 2^53, MessagePack int 64 / uint 64, and decimal text
 * are stored as the integers they spell (a bigint past 2^53), in join keys
 * too; beyond int64 the event is a dead letter naming the digits.
 */

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const ABOVE_SAFE = 2n ** 53n + 1n;

async function pipeline(format: "json" | "msgpack") {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const [source] = compileSources(
    {
      sources: [
        {
          name: `big-${format}`,
          engine: "redis",
          format,
          redis: { url: "redis://127.0.0.1:1", stream: "unused", group: "quiver" },
          mappings: [{ featureView: "driver_hourly_stats", keys: { driver_id: "driver" }, features: { avg_daily_trips: "n", recent_trip_ids: "ids" }, eventTime: { path: "ts", format: "epoch_ms" } }],
        },
      ],
    },
    registry,
  );
  const store = new ArenaKvNode("a");
  const counters = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false })).forSource(`big-${format}`);
  const seen = new IdempotencyWindow(60_000);
  const mapper = new BatchMapper(source!, seen);
  const writer = new BatchWriter(`big-${format}`, `big-${format}`, new PushService(store, { maxFutureSkewMs: 60_000 }, () => 10_000), store, seen, counters, () => 10_000);
  const view = registry.views.get("driver_hourly_stats")!;
  const at = (name: string) => view.featureIndex.get(name)!.index;
  return { store, mapper, writer, at, key: (id: string) => `${view.keyPrefix}driver_id=i${id}` };
}

const wide = new Encoder({ useBigInt64: true });

test("JSON and MessagePack payloads: -2^63, 2^63-1, 2^53+1 and safe values stored exactly, as features and join keys", async () => {
  const json = (text: string, id: string): Delivery => ({ id, payload: new TextEncoder().encode(text), deliveries: 1 });
  const mp = (o: unknown, id: string): Delivery => ({ id, payload: wide.encode(o), deliveries: 1 });
  const cases: [bigint | number, string][] = [
    [MIN, "-9223372036854775808"],
    [MAX, "9223372036854775807"],
    [ABOVE_SAFE, "9007199254740993"],
    [1001, "1001"],
  ];
  for (const format of ["json", "msgpack"] as const) {
    const { store, mapper, writer, at, key } = await pipeline(format);
    const batch = cases.map(([v, digits], i) =>
      format === "json"
        ? json(`{"driver": ${digits}, "n": ${digits}, "ids": [${digits}, "${digits}", 5], "ts": 5000}`, `${i}-0`)
        : mp({ driver: v, n: v, ids: [v, digits, 5], ts: 5000 }, `${i}-0`),
    );
    const mapped = mapper.map(batch);
    expect(mapped.dead).toEqual([]);
    const prepared = writer.prepare(mapped.groups);
    expect(prepared.dead).toEqual([]);
    expect((await writer.write(prepared)).written).toBe(4);
    const rows = store.getManyNow(cases.map(([, digits]) => key(digits)));
    cases.forEach(([v], i) => {
      const row = rows[i] as { readonly values: readonly unknown[] };
      const exact = typeof v === "bigint" && v >= -(2n ** 53n) && v <= 2n ** 53n - 1n ? Number(v) : v;
      expect({ format, i, n: row.values[at("avg_daily_trips")] }).toEqual({ format, i, n: exact });
      expect({ format, i, ids: row.values[at("recent_trip_ids")] }).toEqual({ format, i, ids: [exact, exact, 5] });
    });
  }
});

test("beyond int64 and non-integers are dead letters naming the field and the value as sent", async () => {
  const { mapper, writer } = await pipeline("json");
  const d = (text: string, id: string): Delivery => ({ id, payload: new TextEncoder().encode(text), deliveries: 1 });
  const mapped = mapper.map([
    d('{"driver": 1, "n": 9223372036854775808, "ts": 5000}', "1-0"),
    d('{"driver": 2, "n": "-9223372036854775809", "ts": 5000}', "2-0"),
    d('{"driver": 3, "n": 1.5, "ts": 5000}', "3-0"),
    d('{"driver": 9223372036854775808, "n": 1, "ts": 5000}', "4-0"),
  ]);
  const prepared = writer.prepare(mapped.groups);
  const dead = [...mapped.dead, ...prepared.dead].map((x) => [x.delivery.id, x.letter.reason, x.letter.path, x.letter.error]);
  expect(dead).toEqual([
    ["1-0", "invalid_value", "n", expect.stringContaining("int64's range [-2^63, 2^63 − 1], got integer 9223372036854775808")],
    ["2-0", "invalid_value", "n", expect.stringContaining('got "-9223372036854775809"')],
    ["3-0", "invalid_value", "n", expect.stringContaining("expected an integer, got number 1.5")],
    ["4-0", "invalid_value", "driver", expect.stringContaining("int64 out of range: 9223372036854775808")],
  ]);
});
