import { describe, expect, test } from "bun:test";
import { QuiverError } from "../errors/index.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { type Registry, RegistryHolder } from "../registry/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { ColumnEntities, RowEntities } from "./entity-input.ts";
import { FeatureServing } from "./feature-serving.ts";
import { FEAST_LOOKUP, planLookup, QUIVER_LOOKUP } from "./lookup-request.ts";
import { LookupService } from "./lookup-service.ts";
import { FEAST_PUSH, FEAST_WRITE, planPush, QUIVER_PUSH } from "./push-request.ts";
import { PushService } from "./push-service.ts";

const registry: Registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }, { name: "city", type: "string" }] }],
  featureServices: [{ name: "ranker", features: ["stats:rate"] }],
});
const NOW = 1_763_800_000_000;
const pushService = new PushService(new MemoryKvNode("m"), { maxFutureSkewMs: 3_600_000 }, () => NOW);

/** The QuiverError a call throws, for asserting kind, code and path together. */
function errorOf(fn: () => unknown): QuiverError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(QuiverError);
    return e as QuiverError;
  }
  throw new Error("expected the call to throw");
}

describe("planLookup", () => {
  test("Quiver's dialect: row entities, defaults filled unless switched off, names bare unless asked", () => {
    const plan = planLookup(registry, { features: ["stats:rate", "stats:city"], entities: [{ driver_id: 1 }] }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 });
    expect(plan.query.refs.map((r) => r.feature.fullName)).toEqual(["stats__rate", "stats__city"]);
    expect(plan.entities).toBeInstanceOf(RowEntities);
    expect(plan.query.fillDefaults).toBe(true);
    expect(plan.fullFeatureNames).toBe(false);
    const off = planLookup(registry, { featureService: "ranker", entities: { driver_id: [1, 2] }, fillDefaults: false, fullFeatureNames: true }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 });
    expect(off.query.refs.length).toBe(1);
    expect(off.entities).toBeInstanceOf(ColumnEntities);
    expect(off.query.fillDefaults).toBe(false);
    expect(off.fullFeatureNames).toBe(true);
  });

  test("Feast's dialect never fills defaults and reads flags as Feast's server (pydantic's lax booleans) does", () => {
    const plan = planLookup(registry, { feature_service: "ranker", entities: { driver_id: [1] }, full_feature_names: "yes" }, FEAST_LOOKUP, { maxRows: 10, maxValues: 1000 });
    expect(plan.query.fillDefaults).toBe(false);
    expect(plan.fullFeatureNames).toBe(true);
    expect(planLookup(registry, { feature_service: "ranker", entities: { driver_id: [1] }, full_feature_names: "off" }, FEAST_LOOKUP, { maxRows: 10, maxValues: 1000 }).fullFeatureNames).toBe(false);
    expect(errorOf(() => planLookup(registry, { feature_service: "ranker", entities: { driver_id: [1] }, full_feature_names: [] }, FEAST_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ path: "full_feature_names" });
    expect(planLookup(registry, { features: ["stats:rate"], entities: { driver_id: [1] }, full_feature_names: true }, FEAST_LOOKUP, { maxRows: 10, maxValues: 1000 }).fullFeatureNames).toBe(true);
  });

  test("errors carry a kind, a stable code and the dialect's field path", () => {
    expect(errorOf(() => planLookup(registry, { features: ["ghost:x"], entities: [] }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "unknown_name", code: "unknown_feature_view", path: "features[0]" });
    expect(errorOf(() => planLookup(registry, { features: ["stats:x"], entities: [] }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "unknown_name", code: "unknown_feature", path: "features[0]" });
    expect(errorOf(() => planLookup(registry, { feature_service: "nope", entities: {} }, FEAST_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "unknown_name", code: "unknown_feature_service", path: "feature_service" });
    expect(errorOf(() => planLookup(registry, { features: [7], entities: [] }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "invalid_argument", path: "features[0]" });
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"] }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "invalid_argument", code: "invalid_request", path: "entities" });
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"], entities: [], fillDefaults: 1 }, QUIVER_LOOKUP, { maxRows: 10, maxValues: 1000 }))).toMatchObject({ kind: "invalid_argument", path: "fillDefaults" });
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"], entities: [{}, {}, {}] }, QUIVER_LOOKUP, { maxRows: 2, maxValues: 1000 }))).toMatchObject({ code: "too_many_rows", path: "entities" });
  });

  test("rows × features beyond the value limit is a 400 naming entities, with both counts; at the limit it plans", () => {
    const limits = { maxRows: 100, maxValues: 6 };
    const ok = planLookup(registry, { features: ["stats:rate", "stats:city"], entities: { driver_id: [1, 2, 3] } }, QUIVER_LOOKUP, limits);
    expect(ok.query.refs.length * ok.entities.rowCount).toBe(6);
    const e = errorOf(() => planLookup(registry, { features: ["stats:rate", "stats:city"], entities: { driver_id: [1, 2, 3, 4] } }, QUIVER_LOOKUP, limits));
    expect(e).toMatchObject({ kind: "invalid_argument", code: "too_many_values", path: "entities" });
    expect(e.message).toContain("4 entity rows × 2 features is 8 values; the limit is 6");
  });

  test("Feast echoes entity columns: a scalar or a list of scalars echoes; an object or nested list is a 400 naming it (deep nesting overflowed the encoder)", () => {
    const limits = { maxRows: 10, maxValues: 1000 };
    const plan = planLookup(registry, { features: ["stats:rate"], entities: { driver_id: [1, [1, "b", null]] } }, FEAST_LOOKUP, limits);
    expect(plan.entities.keyNames).toEqual(["driver_id"]);
    let deep: unknown = [];
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"], entities: { driver_id: [deep] } }, FEAST_LOOKUP, limits))).toMatchObject({ code: "invalid_entity", path: "entities.driver_id[0]" });
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"], entities: [{ driver_id: { a: 1 } }] }, FEAST_LOOKUP, limits))).toMatchObject({ code: "invalid_entity", path: "entities[0].driver_id" });
    // A column that is no join key is refused as Feast refuses it (EntityNotFoundException): it was echoed back.
    expect(errorOf(() => planLookup(registry, { features: ["stats:rate"], entities: { driver_id: [1], drivr_id: [7] } }, FEAST_LOOKUP, limits))).toMatchObject({
      code: "invalid_entity",
      message: "entities.drivr_id: is not a join key of any entity in the registry",
    });
    // Quiver's own answer echoes nothing, so it does not look.
    expect(planLookup(registry, { features: ["stats:rate"], entities: [{ driver_id: 1, x: { a: 1 } }] }, QUIVER_LOOKUP, limits).entities.rowCount).toBe(1);
  });
});

describe("planPush", () => {
  test("row form and Feast's frame form validate to the same stored rows", () => {
    const rows = planPush(registry, pushService, { featureView: "stats", rows: [{ driver_id: 1, rate: 0.5, city: "x", event_timestamp: NOW - 1000 }] }, QUIVER_PUSH, 10);
    const frame = planPush(registry, pushService, { push_source_name: "stats_push_source", df: { driver_id: [1], rate: [0.5], city: ["x"], event_timestamp: [NOW - 1000] } }, FEAST_PUSH, 10);
    expect(frame).toEqual(rows);
    expect(rows[0]!.row).toEqual({ ts: NOW - 1000, values: [0.5, "x"] });
  });

  test("errors name the dialect's field", () => {
    expect(errorOf(() => planPush(registry, pushService, { featureView: "stats_push_source", rows: [{}] }, QUIVER_PUSH, 10))).toMatchObject({ kind: "unknown_name", path: "featureView" });
    expect(errorOf(() => planPush(registry, pushService, { featureView: "stats", rows: [] }, QUIVER_PUSH, 10))).toMatchObject({ kind: "invalid_argument", path: "rows" });
    expect(errorOf(() => planPush(registry, pushService, { featureView: "stats", rows: [{ driver_id: 1 }, { driver_id: 2, speed: 3 }] }, QUIVER_PUSH, 10))).toMatchObject({ kind: "unknown_name", code: "unknown_feature", path: "rows[1].speed" });
    expect(errorOf(() => planPush(registry, pushService, { push_source_name: "stats", df: { driver_id: [1] }, to: "offline" }, FEAST_PUSH, 10))).toMatchObject({ path: "to" });
    expect(errorOf(() => planPush(registry, pushService, { feature_view_name: "stats", df: [] }, FEAST_WRITE, 10))).toMatchObject({ kind: "invalid_argument", path: "df" });
    expect(errorOf(() => planPush(registry, pushService, { feature_view_name: "stats", df: { driver_id: [1], rate: ["fast"] } }, FEAST_WRITE, 10))).toMatchObject({ code: "invalid_value", path: "df.rate[0]" });
  });
});

describe("FeatureServing", () => {
  test("a push is readable through the same use cases", async () => {
    const store = new MemoryKvNode("m");
    const push = new PushService(store, { maxFutureSkewMs: 3_600_000 }, () => NOW);
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(store, () => NOW), push, { maxRows: 10, maxValues: 100_000 });
    expect(await serving.push({ featureView: "stats", rows: [{ driver_id: 7, rate: 0.75 }] }, QUIVER_PUSH)).toEqual({ written: 1, ignored: 0 });
    const result = await serving.lookup(serving.planLookup({ features: ["stats:rate"], entities: [{ driver_id: 7 }, { driver_id: 8 }] }, QUIVER_LOOKUP));
    expect(result.values).toEqual([0.75, 0.25]);
    expect([...result.statuses]).toEqual([1, 3]);
  });
});

describe("a lookup's feature list", () => {
  const embeddings: Registry = compileRegistry({
    entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }, { name: "user", joinKeys: [{ name: "user_id", type: "int64" }] }],
    featureViews: [
      { name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(384)" }, { name: "score", type: "float64" }] },
      { name: "users", entities: ["user"], features: [{ name: "vec", type: "embedding(384)" }] },
    ],
  });
  const limits = { maxRows: 10_000, maxValues: 500_000 };

  test("an embedding counts its dimensions against --max-lookup-values (1,300 rows of one 384-d embedding were 1,300 values, 200 MB of answer)", () => {
    const ids = Array.from({ length: 1_300 }, (_, i) => i);
    expect(errorOf(() => planLookup(embeddings, { features: ["items:vec", "items:score"], entities: { item_id: ids } }, QUIVER_LOOKUP, limits))).toMatchObject({
      code: "too_many_values",
      message: "entities: 1300 entity rows × 2 features (385 values, an embedding counting its dimensions) is 500500 values; the limit is 500000 per lookup: split it",
    });
    expect(planLookup(embeddings, { features: ["items:vec"], entities: { item_id: ids } }, QUIVER_LOOKUP, limits).query.refs).toHaveLength(1);
  });

  test("two columns named alike are refused on both APIs, as Feast refuses them; full names tell views apart", () => {
    const both = { features: ["items:vec", "users:vec"], entities: { item_id: [1], user_id: [2] } };
    for (const dialect of [QUIVER_LOOKUP, FEAST_LOOKUP]) {
      expect(errorOf(() => planLookup(embeddings, both, dialect, limits))).toMatchObject({ code: "feature_name_collision", path: "features[1]" });
      expect(errorOf(() => planLookup(embeddings, { features: ["items:score", "items:score"], entities: { item_id: [1] }, [dialect.fullFeatureNames]: true }, dialect, limits))).toMatchObject({
        code: "feature_name_collision",
        message: 'features[1]: "items:score" is asked for twice; each feature may be named once',
      });
      expect(planLookup(embeddings, { ...both, [dialect.fullFeatureNames]: true }, dialect, limits).fullFeatureNames).toBe(true);
    }
  });

  test("full names that meet (view a__b's c, view a's b__c) and Feast feature columns named like an echoed join key are refused", () => {
    const tricky: Registry = compileRegistry({
      entities: [{ name: "d", joinKeys: [{ name: "did", type: "int64" }] }, { name: "c", joinKeys: [{ name: "cid", type: "string" }] }],
      featureViews: [
        { name: "a__b", entities: ["d"], features: [{ name: "c", type: "float64" }] },
        { name: "a", entities: ["d"], features: [{ name: "b__c", type: "float64" }] },
        { name: "u", entities: ["c"], features: [{ name: "did", type: "int64" }] },
        { name: "v", entities: ["d"], features: [{ name: "i", type: "int64" }] },
      ],
    });
    const meet = { features: ["a__b:c", "a:b__c"], entities: { did: [1] } };
    for (const dialect of [QUIVER_LOOKUP, FEAST_LOOKUP]) {
      // Both answered a column "a__b__c".
      expect(errorOf(() => planLookup(tricky, { ...meet, [dialect.fullFeatureNames]: true }, dialect, limits))).toMatchObject({ code: "feature_name_collision", path: "features[1]" });
      expect(planLookup(tricky, meet, dialect, limits).query.refs).toHaveLength(2);
    }
    // Feast echoes the join keys beside the features: u's feature "did" and v's key "did" were two columns "did".
    const echoed = { features: ["v:i", "u:did"], entities: { did: [7], cid: ["k"] } };
    expect(errorOf(() => planLookup(tricky, echoed, FEAST_LOOKUP, limits))).toMatchObject({ code: "feature_name_collision", path: "features[1]" });
    expect(planLookup(tricky, { ...echoed, full_feature_names: true }, FEAST_LOOKUP, limits).query.refs).toHaveLength(2);
    expect(planLookup(tricky, echoed, QUIVER_LOOKUP, limits).query.refs).toHaveLength(2);
  });
});
