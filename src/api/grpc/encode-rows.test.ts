import { beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ArenaKvNode } from "../../kv/arena-node.ts";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { type CompiledView, loadRegistryFile, type Registry } from "../../registry/index.ts";
import { ColumnEntities, LookupService, type RawRows } from "../../serving/index.ts";
import { ShardedStore } from "../../store/sharded-store.ts";
import { FeastResponseEncoder } from "./encode-feast.ts";
import { FeastRowsEncoder } from "./encode-feast-rows.ts";
import { encodeLookupResponse, type Id } from "./encode-quiver.ts";
import { QuiverRowsEncoder } from "./encode-quiver-rows.ts";
import { loadProtos } from "./protos.ts";

/**
 * gRPC answers written from the stored bytes (LookupService.lookupRaw +
 * QuiverRowsEncoder / FeastRowsEncoder) must be byte for byte the answers of
 * the decoding path (lookup + encodeLookupResponse / FeastResponseEncoder),
 * for any stored values (of the column's type or not), feature choice and
 * order, missing rows, nulls, rows shorter or longer than the schema,
 * defaults on or off, stale rows, name style, ids and echoed keys; a row
 * outside the checked shapes must decline, so the caller decodes.
 */

const protos = loadProtos();
const valueType = protos.type("feast.types.Value");

const NOW = 1_700_000_000_000;
let registry: Registry;

beforeAll(async () => {
  registry = await loadRegistryFile(`${import.meta.dir}/../../registry/example-registry.yaml`, NOW);
});

const anyScalar = fc.oneof(
  fc.double(),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, -1, 127, 128, 255, 256, 65535, 65536, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 + 2, -(2 ** 60), 2 ** 64, 1e21, -0, 0.5, -2.5),
  fc.string({ unit: "binary" }),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
);
const anyValue: fc.Arbitrary<FeatureValue> = fc.oneof(
  anyScalar as fc.Arbitrary<FeatureValue>,
  fc.array(fc.double(), { maxLength: 5 }),
  fc.array(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), { maxLength: 5 }),
  fc.array(fc.string({ unit: "binary" }), { maxLength: 4 }),
  fc.array(fc.boolean(), { maxLength: 3 }),
  fc.array(anyScalar, { maxLength: 3 }) as fc.Arbitrary<FeatureValue>,
);

/** A value of the feature's own type most of the time (what a validated push stores), anything now and then. */
function valueFor(kind: string): fc.Arbitrary<FeatureValue> {
  const typed: Record<string, fc.Arbitrary<FeatureValue>> = {
    int64: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    float64: fc.double(),
    string: fc.string({ unit: "binary", maxLength: 300 }),
    bool: fc.boolean(),
    "int64[]": fc.array(fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), { maxLength: 6 }),
    "float64[]": fc.array(fc.double(), { maxLength: 6 }),
    embedding: fc.array(fc.double({ noNaN: true }), { minLength: 8, maxLength: 8 }),
    "string[]": fc.array(fc.string({ unit: "binary" }), { maxLength: 4 }),
  };
  return fc.oneof({ weight: 6, arbitrary: typed[kind]! }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: anyValue });
}

function rowValues(view: CompiledView): fc.Arbitrary<FeatureValue[]> {
  const full = fc.tuple(...view.features.map((f) => valueFor(f.type.kind)));
  // Rows written under a narrower schema end early.
  return fc.oneof({ weight: 5, arbitrary: full }, { weight: 1, arbitrary: full.chain((vs) => fc.integer({ min: 0, max: vs.length }).map((k) => vs.slice(0, k))) });
}

/** Ids as grpc-js hands them over: small ones as numbers, others as protobufjs Long halves. */
const ids: fc.Arbitrary<Id> = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 2 ** 31 }),
  fc.tuple(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 ** 31 - 1 })).map(([low, high]): Id => ({ low, high, toNumber: () => high * 2 ** 32 + (low >>> 0), toString: () => String(high * 2 ** 32 + (low >>> 0)) })),
);

function setup() {
  const nodes = Array.from({ length: 3 }, (_, i) => ({ id: `a${i}`, weight: 1, node: new ArenaKvNode(`a${i}`) }));
  const store = new ShardedStore(nodes);
  return { store, service: new LookupService(store, () => NOW) };
}

const hex = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString("hex"));

describe("gRPC answers from stored bytes", () => {
  for (const [viewName, joinKey, keyOf] of [
    ["driver_hourly_stats", "driver_id", (i: number) => `i${50_000 + i}`],
    ["customer_profile", "customer_id", (i: number) => `s${`c${i}`.length}:c${i}`],
  ] as const) {
    test(`equal the decoding path's answers, ${viewName} (property)`, async () => {
      const view = registry.views.get(viewName)!;
      const { store, service } = setup();
      const rowsEncoder = new QuiverRowsEncoder();
      const feastRows = new FeastRowsEncoder(valueType);
      const feast = new FeastResponseEncoder(valueType);
      const width = view.features.length;
      let written = 0;
      let feastWritten = 0;
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ present: fc.boolean(), values: rowValues(view), age: fc.integer({ min: 0, max: 3 * 86_400_000 }) }), { minLength: 0, maxLength: 12 }),
          fc.uniqueArray(fc.integer({ min: 0, max: width - 1 }), { minLength: 1, maxLength: width }),
          fc.boolean(),
          fc.boolean(),
          ids,
          fc.boolean(),
          async (rows, featureIdx, fillDefaults, full, id, versions) => {
            runs++;
            const keys = rows.map((_, i) => `${view.keyPrefix}${joinKey}=${keyOf(i)}`);
            await store.deleteMany(keys);
            await store.putMany(rows.flatMap((r, i) => (r.present ? [{ key: keys[i]!, row: { ts: NOW - r.age, values: r.values } }] : [])));
            const refs = featureIdx.map((i) => ({ view, feature: view.features[i]! }));
            const entityIds = rows.map((_, i) => (joinKey === "driver_id" ? 50_000 + i : `c${i}`));
            const q = { refs, entities: new ColumnEntities({ [joinKey]: entityIds }, "entities"), fillDefaults };
            const names = refs.map((r) => (full ? r.feature.fullName : r.feature.name));
            const expected = hex(encodeLookupResponse(await service.lookup(q), names, id));
            const fromRows = service.lookupRaw(q, (r: RawRows, f: boolean) => hex(rowsEncoder.encode(r, f, id)), full);
            // Declining is allowed (the caller decodes); a written answer must be exact.
            if (fromRows !== undefined) {
              expect(fromRows).toBe(expected!);
              written++;
            }
            // Feast: no defaults, the request's key Values echoed first, view versions on request.
            const fq = { ...q, fillDefaults: false };
            const keyVectors = [{ name: joinKey, values: entityIds.map((v) => valueType.fromObject(typeof v === "number" ? { int64_val: v } : { string_val: v })) }];
            const viewVersions = versions ? [{ name: view.name, version: view.version }] : undefined;
            const feastExpected = hex(feast.encode(await service.lookup(fq), keyVectors, names, viewVersions));
            const feastFromRows = service.lookupRaw(fq, (r: RawRows) => hex(feastRows.encode(r, keyVectors, names, viewVersions)), full);
            if (feastFromRows !== undefined) {
              expect(feastFromRows).toBe(feastExpected!);
              feastWritten++;
            }
          },
        ),
        { numRuns: 300, seed: 20261205 },
      );
      // Rows of the columns' own types are written, not declined: the comparison above ran.
      expect(written).toBeGreaterThan(runs / 3);
      expect(feastWritten).toBe(written);
    });
  }

  test("quiver.v1: the demo-like row and a list of the wrong element type are written; a lone surrogate declines", async () => {
    const view = registry.views.get("driver_hourly_stats")!;
    const { store, service } = setup();
    const rowsEncoder = new QuiverRowsEncoder();
    const key = (id: number) => `${view.keyPrefix}driver_id=i${id}`;
    const plain: FeatureValue[] = [0.25, 0.9, 12, true, "Porto", "sedan", 4.5, 7.5, [1, 2, 3], [4.5, 4.75]];
    const at = (i: number) => view.features.findIndex((f) => f.name === ["recent_trip_ids", "city"][i]);
    const withTrips = (trips: FeatureValue) => plain.map((v, i) => (i === at(0) ? trips : v));
    await store.putMany([
      { key: key(1), row: { ts: NOW - 1000, values: plain } },
      { key: key(2), row: { ts: NOW - 1000, values: withTrips(["a", "b"]) } },
      { key: key(3), row: { ts: NOW - 1000, values: plain.map((v, i) => (i === at(1) ? "\ud800" : v)) } },
    ]);
    const refs = view.features.map((feature) => ({ view, feature }));
    const q = (id: number) => ({ refs, entities: new ColumnEntities({ driver_id: [id, 99] }, "entities"), fillDefaults: true });
    const names = refs.map((r) => r.feature.name);
    const write = (r: RawRows, f: boolean) => rowsEncoder.encode(r, f, 7);
    expect(hex(service.lookupRaw(q(1), write, false))).toBe(hex(encodeLookupResponse(await service.lookup(q(1)), names, 7))!);
    expect(hex(service.lookupRaw(q(2), write, false))).toBe(hex(encodeLookupResponse(await service.lookup(q(2)), names, 7))!);
    expect(service.lookupRaw(q(3), write, false)).toBeUndefined();
  });
});
