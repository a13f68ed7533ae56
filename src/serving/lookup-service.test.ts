import { describe, expect, test } from "bun:test";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { neverNow } from "../kv/kv-node.ts";
import { ForwardingKvNode } from "../kv/forwarding-node.ts";
import { LocalChangeFeed } from "../feed/local-feed.ts";
import { CacheTier } from "../cache/cache-tier.ts";
import { cacheMetrics } from "../cache/cache-metrics.ts";
import { L1Cache } from "../cache/l1-cache.ts";
import { MetricsRegistry } from "../ops/metrics.ts";
import { TestOrigin } from "../../test/support/test-origin.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
import type { FeatureRef, Registry } from "../registry/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { ShardedStore } from "../store/sharded-store.ts";
import { ColumnEntities, RowEntities } from "./entity-input.ts";
import { LookupService } from "./lookup-service.ts";
import { PushService } from "./push-service.ts";
import type { RawRows } from "./raw-rows.ts";
import { STATUS_NAMES } from "./statuses.ts";

const registry: Registry = compileRegistry({
  entities: [
    { name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] },
    { name: "rider", joinKeys: [{ name: "rider_id", type: "string" }] },
    { name: "pair", joinKeys: [{ name: "driver_id", type: "int64" }, { name: "rider_id", type: "string" }] },
  ],
  featureViews: [
    {
      name: "stats",
      entities: ["driver"],
      maxAge: "1h",
      features: [
        { name: "rate", type: "float64", default: 0.25 },
        { name: "city", type: "string", default: "unknown" },
        { name: "trips", type: "int64[]" },
      ],
    },
    { name: "profile", entities: ["rider"], features: [{ name: "segment", type: "string", default: "new" }] },
    { name: "affinity", entities: ["pair"], features: [{ name: "trips_together", type: "int64" }] },
  ],
});

const ref = (r: string): FeatureRef => registry.refs.get(r)!;
const HOUR = 3_600_000;

/** A fake clock the test moves by hand. */
function clockAt(start: number) {
  const c = { now: start, read: () => c.now };
  return c;
}

/** A node that is down: every call fails, as a dead Redis would. */
class DownNode implements KvNode {
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  constructor(readonly id: string) {}
  getMany(): Promise<ReadSlot[]> {
    return Promise.reject(new Error("connection refused"));
  }
  putMany(_: readonly KvEntry[]): Promise<PutOutcome> {
    return Promise.reject(Object.assign(new Error("connection refused"), { retryable: true }));
  }
  deleteMany(): Promise<number> {
    return Promise.reject(new Error("connection refused"));
  }
  scan(): Promise<ScanPage> {
    return Promise.reject(new Error("connection refused"));
  }
  health(): Promise<NodeHealth> {
    return Promise.resolve({ id: this.id, ok: false });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function setup(nodes: KvNode[] = [new MemoryKvNode("a"), new MemoryKvNode("b"), new MemoryKvNode("c")]) {
  const clock = clockAt(1_800_000_000_000);
  const store = new ShardedStore(nodes.map((node) => ({ id: node.id, weight: 1, node })));
  const lookup = new LookupService(store, clock.read);
  const push = new PushService(store, { maxFutureSkewMs: HOUR }, clock.read);
  const write = async (view: string, rows: Record<string, unknown>[]) => {
    const v = registry.views.get(view)!;
    const names = new Set(rows.flatMap((r) => Object.keys(r)));
    return push.write(push.prepare(v, new RowEntities(rows, "rows"), [...names].map((name) => ({ name, path: name }))));
  };
  return { clock, store, lookup, write };
}

const statuses = (codes: Uint8Array) => [...codes].map((c) => STATUS_NAMES[c]);

describe("LookupService", () => {
  test("PRESENT, NULL_VALUE and NOT_FOUND with event timestamps", async () => {
    const { lookup, write, clock } = await setup();
    await write("stats", [{ driver_id: 1, event_timestamp: clock.now - 1000, rate: 0.9, city: null, trips: [1, 2] }]);
    const res = await lookup.lookup({
      refs: [ref("stats:rate"), ref("stats:city"), ref("stats:trips")],
      entities: new RowEntities([{ driver_id: 1 }, { driver_id: 2 }], "entities"),
      fillDefaults: false,
    });
    expect(res.values).toEqual([0.9, null, [1, 2], null, null, null]);
    expect(statuses(res.statuses)).toEqual(["PRESENT", "NULL_VALUE", "PRESENT", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]);
    expect([...res.timestamps]).toEqual([clock.now - 1000, clock.now - 1000, clock.now - 1000, 0, 0, 0]);
  });

  test("fillDefaults gives missing values their default but keeps the status", async () => {
    const { lookup, write, clock } = await setup();
    await write("stats", [{ driver_id: 1, event_timestamp: clock.now, rate: 0.9 }]);
    const res = await lookup.lookup({
      refs: [ref("stats:rate"), ref("stats:city"), ref("stats:trips")],
      entities: new RowEntities([{ driver_id: 1 }, { driver_id: 2 }], "entities"),
      fillDefaults: true,
    });
    expect(res.values).toEqual([0.9, "unknown", [], 0.25, "unknown", []]);
    expect(statuses(res.statuses)).toEqual(["PRESENT", "NULL_VALUE", "NULL_VALUE", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]);
  });

  test("a value older than the view's max age is returned, flagged OUTSIDE_MAX_AGE", async () => {
    const { lookup, write, clock } = await setup();
    await write("stats", [{ driver_id: 1, event_timestamp: clock.now, rate: 0.5 }]);
    const q = { refs: [ref("stats:rate")], entities: new RowEntities([{ driver_id: 1 }], "e"), fillDefaults: true };
    clock.now += HOUR;
    expect(statuses((await lookup.lookup(q)).statuses)).toEqual(["PRESENT"]);
    clock.now += 1;
    const stale = await lookup.lookup(q);
    expect(statuses(stale.statuses)).toEqual(["OUTSIDE_MAX_AGE"]);
    expect(stale.values).toEqual([0.5]);
  });

  test("views without max age never go stale", async () => {
    const { lookup, write, clock } = await setup();
    await write("profile", [{ rider_id: "r1", event_timestamp: clock.now, segment: "vip" }]);
    clock.now += 10 * 365 * 24 * HOUR;
    const res = await lookup.lookup({ refs: [ref("profile:segment")], entities: new RowEntities([{ rider_id: "r1" }], "e"), fillDefaults: false });
    expect(statuses(res.statuses)).toEqual(["PRESENT"]);
  });

  test("a node that cannot answer yields UNAVAILABLE with defaults for its keys only", async () => {
    const down = new DownNode("down");
    const { lookup, write, clock, store } = await setup([new MemoryKvNode("up-1"), down, new MemoryKvNode("up-2")]);
    const ids = Array.from({ length: 60 }, (_, i) => i + 1);
    const onUp = ids.filter((id) => store.nodeFor(`stats@1/driver_id=i${id}`) !== down);
    await write("stats", onUp.map((driver_id) => ({ driver_id, event_timestamp: clock.now, rate: 0.75 })));
    const res = await lookup.lookup({
      refs: [ref("stats:rate")],
      entities: new ColumnEntities({ driver_id: ids }, "entities"),
      fillDefaults: true,
    });
    const byId = ids.map((id, i) => [id, STATUS_NAMES[res.statuses[i]!], res.values[i]]);
    for (const [id, status, value] of byId) {
      if (onUp.includes(id as number)) expect([status, value]).toEqual(["PRESENT", 0.75]);
      else expect([status, value]).toEqual(["UNAVAILABLE", 0.25]);
    }
    expect(onUp.length).toBeGreaterThan(0);
    expect(onUp.length).toBeLessThan(ids.length);
    expect(res.degraded).toEqual(["down"]);
  });

  test("composite keys and several views in one request", async () => {
    const { lookup, write, clock } = await setup();
    await write("affinity", [{ driver_id: 7, rider_id: "r1", event_timestamp: clock.now, trips_together: 3 }]);
    await write("profile", [{ rider_id: "r1", event_timestamp: clock.now, segment: "vip" }]);
    await write("stats", [{ driver_id: 7, event_timestamp: clock.now, rate: 0.1 }]);
    const res = await lookup.lookup({
      refs: [ref("affinity:trips_together"), ref("profile:segment"), ref("stats:rate")],
      entities: new RowEntities(
        [
          { driver_id: 7, rider_id: "r1" },
          { driver_id: 7, rider_id: "r2" },
        ],
        "e",
      ),
      fillDefaults: false,
    });
    expect(res.values).toEqual([3, "vip", 0.1, null, null, 0.1]);
  });

  test("int64 1001 and string \"1001\" are different entities; decimal strings spell int64 keys", async () => {
    const { lookup, write, clock } = await setup();
    await write("stats", [{ driver_id: 1001, event_timestamp: clock.now, rate: 1 }]);
    await write("profile", [{ rider_id: "1001", event_timestamp: clock.now, segment: "s" }]);
    const res = await lookup.lookup({
      refs: [ref("stats:rate"), ref("profile:segment")],
      entities: new RowEntities([{ driver_id: "1001", rider_id: "1001" }], "e"),
      fillDefaults: false,
    });
    expect(res.values).toEqual([1, "s"]);
    // The stored keys carry the type tag, so the two "1001"s cannot collide.
    expect(registry.views.get("stats")!.keyPrefix + "driver_id=i1001").not.toBe(registry.views.get("profile")!.keyPrefix + "rider_id=s4:1001");
  });

  test("with the in-process store the lookup answers synchronously", async () => {
    const { lookup } = await setup();
    const out = lookup.lookup({ refs: [ref("stats:rate")], entities: new RowEntities([{ driver_id: 1 }], "e"), fillDefaults: true });
    expect(out instanceof Promise).toBe(false);
  });
});

describe("PushService", () => {
  test("last write wins: an older event is ignored, a newer one replaces the row", async () => {
    const { lookup, write, clock } = await setup();
    expect(await write("stats", [{ driver_id: 1, event_timestamp: clock.now, rate: 0.5 }])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    expect(await write("stats", [{ driver_id: 1, event_timestamp: clock.now - 1, rate: 0.1 }])).toEqual({ written: 0, ignored: 1, sameTime: 0 });
    expect(await write("stats", [{ driver_id: 1, event_timestamp: new Date(clock.now + 1000).toISOString(), rate: 0.7 }])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    const res = await lookup.lookup({ refs: [ref("stats:rate")], entities: new RowEntities([{ driver_id: 1 }], "e"), fillDefaults: false });
    expect(res.values).toEqual([0.7]);
    expect(res.timestamps[0]).toBe(clock.now + 1000);
  });

  test("rejects the whole batch on one bad row, before writing anything", async () => {
    const { store, write, clock } = await setup();
    const rows = [
      { driver_id: 1, event_timestamp: clock.now, rate: 0.5 },
      { driver_id: 2, event_timestamp: clock.now, rate: "fast" },
    ];
    await expect(write("stats", rows)).rejects.toThrow('rows[1].rate: expected float64 (a finite number), got string "fast"');
    expect(await store.getMany(["stats@1/driver_id=i1"])).toEqual([undefined]);
  });

  test("rejects unknown columns, bad timestamps and far-future events with their paths", async () => {
    const { write, clock } = await setup();
    await expect(write("stats", [{ driver_id: 1, rte: 0.5 }])).rejects.toThrow(/rte: feature view "stats" has no feature or join key "rte"/);
    await expect(write("stats", [{ driver_id: 1, event_timestamp: "yesterday" }])).rejects.toThrow(/rows\[0\]\.event_timestamp: expected ms since epoch or an RFC 3339 timestamp/);
    await expect(write("stats", [{ driver_id: 1, event_timestamp: clock.now + 2 * HOUR }])).rejects.toThrow(/in the future; the limit is 3600 s/);
    await expect(write("stats", [{ rate: 1 }])).rejects.toThrow(/rows\[0\]\.driver_id: missing join key "driver_id"/);
  });

  test("a zone-less timestamp is UTC, not server local time", async () => {
    const { lookup, write } = await setup();
    await write("stats", [{ driver_id: 3, event_timestamp: "2027-01-15 07:00:00", rate: 1 }]);
    const res = await lookup.lookup({ refs: [ref("stats:rate")], entities: new RowEntities([{ driver_id: 3 }], "e"), fillDefaults: false });
    expect(res.timestamps[0]).toBe(Date.UTC(2027, 0, 15, 7));
  });

  test("a failing node makes the write fail as retryable, never a silent success", async () => {
    const { write, clock } = await setup([new DownNode("down")]);
    await expect(write("stats", [{ driver_id: 1, event_timestamp: clock.now, rate: 1 }])).rejects.toMatchObject({ retryable: true });
  });
});

/** Counts the synchronous probes a lookup makes of the node it wraps. */
class ProbeCounter extends ForwardingKvNode {
  probes = 0;
  override getManyNow(keys: readonly string[]): ReadSlot[] | undefined {
    this.probes++;
    return super.getManyNow(keys);
  }
}

describe("LookupService over a cache tier (L1)", () => {
  async function cached() {
    const clock = clockAt(1_800_000_000_000);
    const origin = new TestOrigin(new MemoryKvNode("origin"));
    const metrics = new MetricsRegistry({ defaultMetrics: false });
    const m = cacheMetrics(metrics);
    const l1 = new L1Cache({ maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: HOUR, clock: clock.read });
    const tier = new CacheTier(origin, { l1, feed: new LocalChangeFeed("pod"), metrics: m, clock: clock.read });
    const store = new ProbeCounter(tier);
    const push = new PushService(origin.rows, { maxFutureSkewMs: HOUR }, clock.read);
    const v = registry.views.get("stats")!;
    await push.write(push.prepare(v, new RowEntities([{ driver_id: 1, event_timestamp: clock.now, rate: 0.5 }, { driver_id: 2, event_timestamp: clock.now, rate: 0.75 }], "rows"), [{ name: "driver_id", path: "driver_id" }, { name: "event_timestamp", path: "event_timestamp" }, { name: "rate", path: "rate" }]));
    return { lookup: new LookupService(store, clock.read), store, m, tier, origin };
  }
  const query = (ids: number[]) => ({ refs: [ref("stats:rate")], entities: new RowEntities(ids.map((driver_id) => ({ driver_id })), "e"), fillDefaults: true });
  const rawRates = (rows: RawRows) => Array.from({ length: rows.rowCount }, (_, r) => rows.bytes[r] !== undefined);

  test("a raw read that finds a key missing from L1 sends the lookup of that query straight to the tier's read, probing L1 once more, not twice", async () => {
    const { lookup, store, m, tier } = await cached();
    await lookup.lookup(query([1])); // fills L1 with driver 1
    store.probes = 0;
    const hits = m.l1Hits.value;
    const q = query([1, 2]); // 1 in L1, 2 only in the origin
    expect(lookup.lookupRaw(q, rawRates, null)).toBeUndefined();
    const res = await lookup.lookup(q);
    expect(res.values).toEqual([0.5, 0.75]);
    expect(store.probes).toBe(0);
    // The hit is counted once, by the read that served it.
    expect(m.l1Hits.value - hits).toBe(1);
    // Both keys are in L1 now: the raw path answers, and a lookup of another query probes as before.
    expect(lookup.lookupRaw(query([1, 2]), rawRates, null)).toEqual([true, true]);
    expect(await lookup.lookup(query([2, 1]))).toMatchObject({ values: [0.75, 0.5] });
    expect(store.probes).toBe(1);
    await tier.close();
  });

  test("lookupRest after a raw read that found keys missing: only those are read, and the answer is written from bytes", async () => {
    const { lookup, origin, tier } = await cached();
    await lookup.lookup(query([1]));
    const q = query([1, 2, 3]); // 1 in L1; 2 in the origin only; 3 nowhere
    expect(lookup.lookupRaw(q, rawRates, null)).toBeUndefined();
    const before = origin.keysRead;
    const how: string[] = [];
    const answer = await lookup.lookupRest<unknown, null>(
      q,
      undefined,
      (rows) => {
        how.push("bytes");
        return rawRates(rows);
      },
      (_r, _a, late) => {
        how.push(`decoded late=${late}`);
        return [];
      },
      null,
    );
    expect(answer).toEqual([true, true, false]);
    expect(how).toEqual(["bytes"]);
    expect(origin.keysRead - before).toBe(2);
    await tier.close();
  });

  test("one key: a hit answers at once, a miss is read once by lookupRest and written from bytes", async () => {
    const { lookup, origin, tier } = await cached();
    await lookup.lookup(query([1]));
    expect(lookup.lookupRaw(query([1]), rawRates, null)).toEqual([true]);
    const q = query([2]);
    expect(lookup.lookupRaw(q, rawRates, null)).toBeUndefined();
    const reads = origin.reads;
    const how: string[] = [];
    const bytes = (rows: RawRows) => {
      how.push("bytes");
      return rawRates(rows);
    };
    const decoded = () => {
      how.push("decoded");
      return [];
    };
    const answer = await lookup.lookupRest<unknown, null>(q, undefined, bytes, decoded, null);
    expect([answer, how, origin.reads - reads]).toEqual([[true], ["bytes"], 1]);
    await tier.close();
  });

  test("lookupRest: a writer that declines, or a key whose shard cannot answer, gets the decoding path's result from the same read", async () => {
    const { lookup, origin, tier } = await cached();
    await lookup.lookup(query([1]));
    const q = query([1, 2]);
    expect(lookup.lookupRaw(q, rawRates, null)).toBeUndefined();
    const reads = origin.reads;
    const res = await lookup.lookupRest<unknown, null>(q, undefined, () => undefined, (r, _a, late) => ({ values: r.values, late, degraded: r.degraded }), null);
    expect(res).toEqual({ values: [0.5, 0.75], late: true, degraded: [] });
    expect(origin.reads).toBe(reads + 1);
    // The origin down: driver 3 is unavailable, with its default, and the answer says which shard.
    origin.down = true;
    const q3 = query([1, 3]);
    expect(lookup.lookupRaw(q3, rawRates, null)).toBeUndefined();
    const down = await lookup.lookupRest<unknown, null>(q3, undefined, rawRates, (r) => ({ values: r.values, statuses: statuses(r.statuses), degraded: r.degraded }), null);
    expect(down).toEqual({ values: [0.5, 0.25], statuses: ["PRESENT", "UNAVAILABLE"], degraded: ["shard-1"] });
    await tier.close();
  });

  test("lookupRest without a raw read before it is lookup, then encode (late only when storage was waited for)", async () => {
    const { lookup, tier } = await cached();
    await lookup.lookup(query([1]));
    const enc = (r: Awaited<ReturnType<LookupService["lookup"]>>, _a: null, late: boolean) => ({ values: r.values, late });
    expect(lookup.lookupRest<unknown, null>(query([1]), undefined, () => "bytes", enc, null)).toEqual({ values: [0.5], late: false });
    expect(await lookup.lookupRest<unknown, null>(query([2]), undefined, () => "bytes", enc, null)).toEqual({ values: [0.75], late: true });
    await tier.close();
  });

  test("a raw read declined by the writer (not by a miss) leaves the lookup its synchronous probe", async () => {
    const { lookup, store, tier } = await cached();
    await lookup.lookup(query([1, 2]));
    store.probes = 0;
    const q = query([1, 2]);
    expect(lookup.lookupRaw(q, () => undefined, null)).toBeUndefined();
    const res = lookup.lookup(q);
    expect(res).not.toBeInstanceOf(Promise);
    expect((res as Awaited<typeof res>).values).toEqual([0.5, 0.75]);
    expect(store.probes).toBe(1);
    await tier.close();
  });

  test("the hint is for the query that was declined: a lookup of another one still probes", async () => {
    const { lookup, store, tier } = await cached();
    await lookup.lookup(query([1]));
    store.probes = 0;
    expect(lookup.lookupRaw(query([1, 2]), rawRates, null)).toBeUndefined();
    expect(lookup.lookup(query([1]))).not.toBeInstanceOf(Promise);
    expect(store.probes).toBe(1);
    await tier.close();
  });
});
