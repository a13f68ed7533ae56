import { beforeAll, describe, expect, test } from "bun:test";
import { decode as decodeMsgpack } from "@msgpack/msgpack";
import fc from "fast-check";
import { ArenaKvNode } from "../../kv/arena-node.ts";
import { encodeRow } from "../../kv/row-codec.ts";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { type CompiledView, loadRegistryFile, type Registry } from "../../registry/index.ts";
import { ColumnEntities, LookupService, type RawRows, Status } from "../../serving/index.ts";
import { ShardedStore } from "../../store/sharded-store.ts";
import { CacheTier, cacheMetrics, L1Cache } from "../../cache/index.ts";
import { LocalChangeFeed } from "../../feed/local-feed.ts";
import { MetricsRegistry } from "../../ops/metrics.ts";
import { FeastAnswerEncoder } from "./feast-answer.ts";
import { NativeAnswerEncoder } from "./native-answer.ts";

/**
 * Answers written from the stored bytes (LookupService.lookupRaw +
 * jsonRows / msgpackRows) must be byte for byte the answers of the decoding
 * path (lookup + json / msgpack), for any stored values, feature choice and
 * order, missing rows, nulls, defaults on or off, stale rows and name style;
 * and rows holding bytes outside the checked shapes must decline, so the
 * caller decodes.
 */

const NOW = 1_700_000_000_000;
let registry: Registry;
let view: CompiledView;

beforeAll(async () => {
  registry = await loadRegistryFile(`${import.meta.dir}/../../registry/example-registry.yaml`, NOW);
  view = registry.views.get("driver_hourly_stats")!;
});

const scalar = fc.oneof(
  fc.double(),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, -1, 127, 128, 255, 256, 65535, 65536, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 + 2, -(2 ** 60), 1e21, -0),
  fc.string({ unit: "binary" }),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
);
const value: fc.Arbitrary<FeatureValue> = fc.oneof(
  scalar as fc.Arbitrary<FeatureValue>,
  fc.array(fc.double(), { maxLength: 5 }),
  fc.array(fc.string({ unit: "binary" }), { maxLength: 4 }),
  fc.array(fc.boolean(), { maxLength: 3 }),
);

function setup() {
  const nodes = Array.from({ length: 3 }, (_, i) => ({ id: `a${i}`, weight: 1, node: new ArenaKvNode(`a${i}`) }));
  const store = new ShardedStore(nodes);
  return { store, service: new LookupService(store, () => NOW) };
}

/** The same store behind an L1 cache tier: raw reads come from the bytes L1 holds (once a read has filled it). */
function setupCached() {
  const { store } = setup();
  const l1 = new L1Cache({ maxBytes: 64 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: () => NOW });
  const tier = new CacheTier(store, { l1, feed: new LocalChangeFeed("pod"), metrics: cacheMetrics(new MetricsRegistry()), clock: () => NOW });
  return { store: tier, service: new LookupService(tier, () => NOW) };
}

const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

describe("answers from stored bytes", () => {
  test.each([
    ["the embedded store", setup],
    ["an L1 cache tier (its rows as held bytes)", setupCached],
  ] as const)("from %s: equal the decoding path's answers, JSON and MessagePack (property)", async (_name, make) => {
    const { store, service } = make();
    const cached = make === setupCached;
    let nextId = 50_000;
    const enc = new NativeAnswerEncoder();
    const feast = new FeastAnswerEncoder();
    const width = view.features.length;
    let written = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ present: fc.boolean(), values: fc.array(value, { minLength: 0, maxLength: width + 2 }), age: fc.integer({ min: 0, max: 3 * 86_400_000 }) }), { minLength: 0, maxLength: 8 }),
        fc.oneof(
          fc.uniqueArray(fc.integer({ min: 0, max: width - 1 }), { minLength: 1, maxLength: width }),
          // The view's first k features in stored order: rows are transcoded in one pass (or, when they hold more values, indexed).
          fc.integer({ min: 1, max: width }).map((k) => Array.from({ length: k }, (_, i) => i)),
        ),
        fc.boolean(),
        fc.boolean(),
        async (rows, featureIdx, fillDefaults, full) => {
          // Entities no run used before: each run starts from nothing stored (and nothing cached).
          const ids = rows.map(() => nextId++);
          const present = rows.flatMap((r, i) => (r.present ? [{ key: `${view.keyPrefix}driver_id=i${ids[i]}`, row: { ts: NOW - r.age, values: r.values } }] : []));
          await store.putMany(present);
          const refs = featureIdx.map((i) => ({ view, feature: view.features[i]! }));
          const q = { refs, entities: new ColumnEntities({ driver_id: ids }, "entities"), fillDefaults };
          // A cache tier holds none of these keys yet: no raw answer until a read has filled L1.
          if (cached && rows.length > 0) expect(service.lookupRaw(q, (r: RawRows, f: boolean) => enc.jsonRows(r, f), full)).toBeUndefined();
          const decoded = await service.lookup(q);
          const expectedJson = text(enc.json(decoded, full));
          const expectedMsgpack = Buffer.from(enc.msgpack(decoded, full));
          const json = service.lookupRaw(q, (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), full);
          const mp = service.lookupRaw(q, (r: RawRows, f: boolean) => {
            const b = enc.msgpackRows(r, f);
            return b === undefined ? undefined : Buffer.from(b);
          }, full);
          // Declining is allowed (the caller decodes); a written answer must be exact.
          if (json !== undefined) expect(json).toBe(expectedJson!);
          if (mp !== undefined) expect(mp.equals(expectedMsgpack)).toBe(true);
          // Feast's column-major answer (Feast fills no defaults).
          const fq = { ...q, fillDefaults: false };
          const feastExpected = text(feast.json(await service.lookup(fq), fq.entities, full));
          const feastJson = service.lookupRaw(fq, (r: RawRows, f: boolean) => text(feast.jsonRows(r, fq.entities, f)), full);
          if (feastJson !== undefined) expect(feastJson).toBe(feastExpected!);
          written += json === undefined ? 0 : 1;
        },
      ),
      { numRuns: 400, seed: 20261203 },
    );
    // Most random rows are inside the checked shapes: the comparison above ran, not only the declines.
    expect(written).toBeGreaterThan(200);
  });

  test("keys an L1 tier lacks, read through: the answer written from L1's bytes and the rows read equals the decoding path's (property)", async () => {
    const { store } = setup();
    const l1 = new L1Cache({ maxBytes: 64 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: () => NOW });
    const tier = new CacheTier(store, { l1, feed: new LocalChangeFeed("pod"), metrics: cacheMetrics(new MetricsRegistry()), clock: () => NOW });
    const service = new LookupService(tier, () => NOW);
    // The decoding path over the store itself: what the answer must be.
    const reference = new LookupService(store, () => NOW);
    let nextId = 90_000;
    const enc = new NativeAnswerEncoder();
    const feast = new FeastAnswerEncoder();
    const width = view.features.length;
    let through = 0;
    let readBefore = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ present: fc.boolean(), values: fc.array(value, { minLength: 0, maxLength: width + 2 }), age: fc.integer({ min: 0, max: 3 * 86_400_000 }), cached: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(fc.integer({ min: 0, max: width - 1 }), { minLength: 1, maxLength: width }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom("json", "msgpack", "feast"),
        async (rows, featureIdx, fillDefaults, full, format) => {
          const ids = rows.map(() => nextId++);
          await store.putMany(rows.flatMap((r, i) => (r.present ? [{ key: `${view.keyPrefix}driver_id=i${ids[i]}`, row: { ts: NOW - r.age, values: r.values } }] : [])));
          const refs = featureIdx.map((i) => ({ view, feature: view.features[i]! }));
          const q = { refs, entities: new ColumnEntities({ driver_id: ids }, "entities"), fillDefaults: format === "feast" ? false : fillDefaults };
          // Some keys are in L1 already (rows and negative entries), the others are read through.
          const warm = ids.filter((_, i) => rows[i]!.cached);
          if (warm.length > 0) await service.lookup({ ...q, entities: new ColumnEntities({ driver_id: warm }, "entities") });
          const expected = await reference.lookup(q);
          const want = format === "json" ? text(enc.json(expected, full)) : format === "msgpack" ? Buffer.from(enc.msgpack(expected, full)).toString("hex") : text(feast.json(expected, q.entities, full));
          const raw = (r: RawRows) => {
            const b = format === "json" ? enc.jsonRows(r, full) : format === "msgpack" ? enc.msgpackRows(r, full) : feast.jsonRows(r, q.entities, full);
            return b === undefined ? undefined : format === "msgpack" ? `raw:${Buffer.from(b).toString("hex")}` : `raw:${text(b)}`;
          };
          const decoded = (res: Awaited<ReturnType<LookupService["lookup"]>>) => (format === "json" ? text(enc.json(res, full)) : format === "msgpack" ? Buffer.from(enc.msgpack(res, full)).toString("hex") : text(feast.json(res, q.entities, full)));
          if (warm.length === ids.length) {
            readBefore++;
            return;
          }
          expect(service.lookupRaw(q, raw, null)).toBeUndefined();
          const answer = (await service.lookupRest(q, undefined, raw, decoded, null)) ?? "";
          // Written from bytes unless a row is outside the checked shapes (then decoded): the same answer either way.
          if (answer.startsWith("raw:")) through++;
          expect(answer.replace(/^raw:/, "")).toBe(want!);
          // Every key is in L1 now: the synchronous raw path answers the same.
          const again = service.lookupRaw(q, raw, null);
          if (again !== undefined) expect(again.replace(/^raw:/, "")).toBe(want!);
        },
      ),
      { numRuns: 300, seed: 20261205 },
    );
    expect(through).toBeGreaterThan(100);
    expect(readBefore).toBeLessThan(100);
  });

  test("the ordinary demo-like rows are written, not declined; rows outside the checked shapes decline", async () => {
    const { store, service } = setup();
    const enc = new NativeAnswerEncoder();
    const key = (id: number) => `${view.keyPrefix}driver_id=i${id}`;
    const plain: FeatureValue[] = [0.25, 0.9, 12, true, "Porto", "sedan", 4.5, 7.5, [1, 2, 3], [4.5, 4.75]];
    await store.putMany([
      { key: key(1), row: { ts: NOW - 1000, values: plain } },
      // A lone surrogate: only the library's decoder restores its bytes.
      { key: key(2), row: { ts: NOW - 1000, values: ["\ud800", ...plain.slice(1)] } },
      // Lists nested twice.
      { key: key(3), row: { ts: NOW - 1000, values: [[[1]] as unknown as FeatureValue, ...plain.slice(1)] } },
      // A map, last: the one-pass writer has written the rest of the row when it meets it.
      { key: key(4), row: { ts: NOW - 1000, values: [...plain.slice(0, 9), { a: 1 } as unknown as FeatureValue] } },
      // More values than the view has features: the row is indexed, and the extra value is checked too.
      { key: key(5), row: { ts: NOW - 1000, values: [...plain, "extra"] } },
      { key: key(6), row: { ts: NOW - 1000, values: [...plain, [[2]] as unknown as FeatureValue] } },
    ]);
    // Every scalar format the library writes, each of which must be written (a width read wrong would only decline).
    const formats: FeatureValue[] = [
      -0.5, -5, 200, -100, 300, -200, 70_000, -40_000, "x".repeat(40), "y".repeat(300),
      [2 ** 40, -(2 ** 40), 127, -32, 65_535, 2 ** 32 - 1, "é", "z".repeat(31)] as unknown as FeatureValue, [null, false, true, 0, 1.5] as unknown as FeatureValue,
    ];
    await store.putMany([
      { key: key(7), row: { ts: NOW - 1000, values: formats.slice(0, 10) } },
      { key: key(8), row: { ts: NOW - 1000, values: [...plain.slice(0, 8), ...formats.slice(10)] } },
    ]);
    const refs = view.features.map((feature) => ({ view, feature }));
    const q = (id: number) => ({ refs, entities: new ColumnEntities({ driver_id: [id] }, "entities"), fillDefaults: true });
    const written = service.lookupRaw(q(1), (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false);
    expect(written).toBe(text(enc.json(await service.lookup(q(1)), false)));
    for (const id of [7, 8]) {
      const decoded = await service.lookup(q(id));
      expect(service.lookupRaw(q(id), (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false)).toBe(text(enc.json(decoded, false)));
      const mp = service.lookupRaw(q(id), (r: RawRows, f: boolean) => enc.msgpackRows(r, f), false);
      expect(mp === undefined ? undefined : Buffer.from(mp).equals(Buffer.from(enc.msgpack(decoded, false)))).toBe(true);
    }
    // Each decline comes after row 1 was written: the half-written answer is dropped, not returned.
    const both = (id: number) => new ColumnEntities({ driver_id: [1, id] }, "entities");
    for (const id of [2, 3, 4, 6]) {
      expect(service.lookupRaw({ ...q(id), entities: both(id) }, (r: RawRows, f: boolean) => enc.jsonRows(r, f), false)).toBeUndefined();
      expect(service.lookupRaw({ ...q(id), entities: both(id) }, (r: RawRows, f: boolean) => enc.msgpackRows(r, f), false)).toBeUndefined();
    }
    const wide = service.lookupRaw({ ...q(5), entities: both(5) }, (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false);
    expect(wide).toBe(text(enc.json(await service.lookup({ ...q(5), entities: both(5) }), false)));
  });

  test("stored bytes with a bad frame decline: trailing bytes after the row, a row cut short", () => {
    const node = new ArenaKvNode("solo");
    const service = new LookupService(new ShardedStore([{ id: "solo", weight: 1, node }]), () => NOW);
    const enc = new NativeAnswerEncoder();
    const plain: FeatureValue[] = [0.25, 0.9, 12, true, "Porto", "sedan", 4.5, 7.5, [1, 2, 3], [4.5, 4.75]];
    const good = encodeRow({ ts: NOW - 1000, values: plain });
    const key = (id: number) => `${view.keyPrefix}driver_id=i${id}`;
    node.putEncoded(key(1), good);
    node.putEncoded(key(2), Uint8Array.from([...good, 0xc0]));
    node.putEncoded(key(3), good.subarray(0, good.length - 3));
    const refs = view.features.map((feature) => ({ view, feature }));
    const q = (id: number) => ({ refs, entities: new ColumnEntities({ driver_id: [1, id] }, "entities"), fillDefaults: true });
    expect(service.lookupRaw(q(1), (r: RawRows, f: boolean) => enc.jsonRows(r, f), false)).toBeDefined();
    for (const id of [2, 3]) {
      expect(service.lookupRaw(q(id), (r: RawRows, f: boolean) => enc.jsonRows(r, f), false)).toBeUndefined();
      expect(service.lookupRaw(q(id), (r: RawRows, f: boolean) => enc.msgpackRows(r, f), false)).toBeUndefined();
    }
  });

  test("stored bytes of any shape: every writer either declines or writes the decoding path's answer, and none throws (property)", async () => {
    const node = new ArenaKvNode("solo");
    const service = new LookupService(new ShardedStore([{ id: "solo", weight: 1, node }]), () => NOW);
    const enc = new NativeAnswerEncoder();
    const feast = new FeastAnswerEncoder();
    const width = view.features.length;
    const good = encodeRow({ ts: NOW - 1000, values: [0.25, 0.9, 12, true, "Porto", "sedan", 4.5, 7.5, [1, 2, 3], [4.5, 4.75]] });
    // A valid row with bytes flipped, cut or appended, or a short array header over random bytes.
    const mangled = fc.oneof(
      fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }).map((edits) => {
        const b = good.slice();
        for (const e of edits) b[8 + (e.at % (b.length - 8))] = e.byte;
        return b;
      }),
      fc.nat({ max: good.length - 9 }).map((cut) => good.subarray(0, 9 + cut)),
      fc.uint8Array({ minLength: 0, maxLength: 40 }).map((tail) => Uint8Array.from([...good, ...tail])),
      fc.tuple(fc.integer({ min: 0, max: width + 2 }), fc.uint8Array({ minLength: 0, maxLength: 120 })).map(([n, body]) => Uint8Array.from([...good.subarray(0, 8), 0x90 | n, ...body])),
    );
    const refs = view.features.map((feature) => ({ view, feature }));
    let compared = 0;
    let key = 0;
    await fc.assert(
      fc.asyncProperty(mangled, fc.boolean(), async (row, fillDefaults) => {
        const k = `${view.keyPrefix}driver_id=i${++key}`;
        node.putEncoded(k, row);
        const q = { refs, entities: new ColumnEntities({ driver_id: [key] }, "entities"), fillDefaults };
        let decoded: Awaited<ReturnType<LookupService["lookup"]>> | undefined;
        try {
          decoded = await service.lookup(q);
        } catch {
          decoded = undefined; // the decoder refuses these bytes: the raw writers must decline too
        }
        const json = service.lookupRaw(q, (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false);
        const mp = service.lookupRaw(q, (r: RawRows, f: boolean) => {
          const b = enc.msgpackRows(r, f);
          return b === undefined ? undefined : Buffer.from(b);
        }, false);
        const fq = { ...q, fillDefaults: false };
        const feastJson = service.lookupRaw(fq, (r: RawRows, f: boolean) => text(feast.jsonRows(r, fq.entities, f)), false);
        if (decoded === undefined) {
          expect([json, mp, feastJson]).toEqual([undefined, undefined, undefined]);
          return;
        }
        if (json !== undefined) expect(json).toBe(text(enc.json(decoded, false))!);
        // MessagePack answers copy stored values as they are: bytes the library would encode otherwise (2.0 kept as a
        // float64 where it writes 2) are the same values, not the same bytes. Rows our writer stores are compared byte for byte above.
        if (mp !== undefined) expect(decodeMsgpack(mp)).toEqual(decodeMsgpack(enc.msgpack(decoded, false)));
        if (feastJson !== undefined) expect(feastJson).toBe(text(feast.json(await service.lookup(fq), fq.entities, false))!);
        if (json !== undefined) compared++;
      }),
      { numRuns: 600, seed: 20261205 },
    );
    // Some mangled rows are still rows (a flipped byte inside a string, say): the comparison ran, not only the declines.
    expect(compared).toBeGreaterThan(20);
  });

  test("a row stored at event time -0 (pushed as -0.0) answers eventTimestamps as the integer 0, from the bytes and decoded", async () => {
    const node = new ArenaKvNode("solo");
    const service = new LookupService(new ShardedStore([{ id: "solo", weight: 1, node }]), () => 60_000);
    const enc = new NativeAnswerEncoder();
    await node.putMany([{ key: `${view.keyPrefix}driver_id=i1`, row: { ts: -0, values: [0.25, 0.5, 3] } }]);
    const tail = `${Buffer.from("eventTimestamps").toString("hex")}93000000`;
    // In stored order (the whole row copied) and in another order (value by value).
    for (const order of [[0, 1, 2], [2, 0, 1]]) {
      const refs = order.map((i) => ({ view, feature: view.features[i]! }));
      const q = { refs, entities: new ColumnEntities({ driver_id: [1] }, "entities"), fillDefaults: false };
      const raw = service.lookupRaw(q, (r: RawRows, f: boolean) => enc.msgpackRows(r, f)?.slice(), false);
      expect(raw === undefined ? undefined : Buffer.from(raw).toString("hex").endsWith(tail)).toBe(true);
      expect(Buffer.from(enc.msgpack(await service.lookup(q), false)).toString("hex").endsWith(tail)).toBe(true);
    }
  });

  test("string join keys: ASCII ones are read as bytes, others decline to the decoding path, both find their rows", async () => {
    const { store, service } = setup();
    const customers = registry.views.get("customer_profile")!;
    const enc = new NativeAnswerEncoder();
    const ids = ["c1", "a;b=c", "ünïcode", ""];
    await store.putMany(ids.map((id, i) => ({ key: `${customers.keyPrefix}customer_id=s${id.length}:${id}`, row: { ts: NOW - 1000, values: customers.features.map((f) => (f.typeName === "string" ? `v${i}` : f.defaultValue)) } })));
    const refs = customers.features.map((feature) => ({ view: customers, feature }));
    const q = (id: string) => ({ refs, entities: new ColumnEntities({ customer_id: [id, "missing"] }, "entities"), fillDefaults: true });
    for (const id of ["c1", "a;b=c", ""]) {
      const written = service.lookupRaw(q(id), (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false);
      const decoded = await service.lookup(q(id));
      expect(written).toBe(text(enc.json(decoded, false)));
      expect([...decoded.statuses.subarray(0, refs.length)].every((s) => s === Status.PRESENT)).toBe(true);
    }
    expect(service.lookupRaw(q("ünïcode"), (r: RawRows, f: boolean) => text(enc.jsonRows(r, f)), false)).toBeUndefined();
    expect((await service.lookup(q("ünïcode"))).statuses[0]).toBe(Status.PRESENT);
  });

  test("a store without raw reads, or a request over several views, is not answered here", async () => {
    const service = new LookupService(new ShardedStore([{ id: "m", weight: 1, node: new (await import("../../kv/memory-node.ts")).MemoryKvNode("m") }]), () => NOW);
    const refs = [{ view, feature: view.features[0]! }];
    expect(service.lookupRaw({ refs, entities: new ColumnEntities({ driver_id: [1] }, "entities"), fillDefaults: true }, () => "written", false)).toBeUndefined();
    const other = registry.views.get("customer_profile")!;
    const { service: raw } = setup();
    const mixed = [
      { view, feature: view.features[0]! },
      { view: other, feature: other.features[0]! },
    ];
    expect(raw.lookupRaw({ refs: mixed, entities: new ColumnEntities({ driver_id: [1], customer_id: ["c1"] }, "entities"), fillDefaults: true }, () => "written", false)).toBeUndefined();
  });
});
