import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QuiverError } from "../errors/index.ts";
import { compileRegistry, parseDefinitionsText, pointerToPath } from "./read-definitions.ts";
import { parseDurationMs } from "./durations.ts";
import { loadRegistryFile } from "./load-registry.ts";

const base = () => ({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [
    {
      name: "stats",
      entities: ["driver"],
      maxAge: "1h",
      features: [
        { name: "rate", type: "float64" },
        { name: "city", type: "string" },
      ],
    },
  ],
});

/** Compiles and returns the issues the registry was rejected with. */
function issuesOf(def: unknown): { path: string; message: string }[] {
  try {
    compileRegistry(def);
  } catch (e) {
    expect(e).toBeInstanceOf(QuiverError);
    expect((e as QuiverError).code).toBe("invalid_registry");
    return [...(e as QuiverError).issues];
  }
  throw new Error("expected the registry to be rejected");
}

describe("example registry", () => {
  test("loads with 5 views, 25+ features of every type and 2 services", async () => {
    const r = await loadRegistryFile("src/registry/example-registry.yaml");
    expect(r.views.size).toBe(5);
    expect(r.refs.size).toBeGreaterThanOrEqual(25);
    const types = new Set([...r.refs.values()].map((ref) => ref.feature.typeName));
    for (const t of ["int64", "float64", "string", "bool", "int64[]", "float64[]", "string[]", "embedding(8)"]) expect(types).toContain(t);
    expect([...r.services.keys()]).toEqual(["driver_ranking", "fraud_detection"]);
  });

  test("derives defaults: explicit, median, most common, zero, false, empty, zero vector", async () => {
    const r = await loadRegistryFile("src/registry/example-registry.yaml");
    const d = (ref: string) => r.refs.get(ref)!.feature.defaultValue;
    expect(d("driver_hourly_stats:acc_rate")).toBe(0.5);
    expect(d("driver_hourly_stats:avg_daily_trips")).toBe(12);
    expect(d("customer_profile:lifetime_spend")).toBe(182.5);
    expect(d("driver_hourly_stats:vehicle_type")).toBe("sedan");
    expect(d("driver_hourly_stats:conv_rate")).toBe(0);
    expect(d("driver_hourly_stats:is_active")).toBe(false);
    expect(d("driver_hourly_stats:recent_trip_ids")).toEqual([]);
    expect(d("customer_profile:embedding")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(d("customer_profile:segment")).toBe("regular");
  });

  test("composite entities give the view every join key in order", async () => {
    const r = await loadRegistryFile("src/registry/example-registry.yaml");
    const v = r.views.get("driver_customer_affinity")!;
    expect(v.joinKeys.map((k) => `${k.name}:${k.type}`)).toEqual(["driver_id:int64", "customer_id:string"]);
    expect(v.keyPrefix).toBe("driver_customer_affinity@1/");
    expect(r.views.get("fraud_signals")!.keyPrefix).toBe("fraud_signals@2/");
    expect(v.maxAgeMs).toBe(30 * 86_400_000);
  });
});

describe("registry validation", () => {
  test("an unknown feature type names the path and the allowed types", () => {
    const def = base();
    def.featureViews[0]!.features[1]!.type = "float";
    expect(issuesOf(def)).toEqual([
      {
        path: "featureViews[0].features[1].type",
        message: 'expected one of int64, float64, string, bool, int64[], float64[], string[], embedding(<dim>), got "float"',
      },
    ]);
  });

  test("reports every problem at once, each with its path", () => {
    const def = {
      entities: [
        { name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] },
        { name: "driver", joinKeys: [{ name: "driver_id", type: "string" }] },
      ],
      featureViews: [
        {
          name: "v",
          entities: ["driver", "ghost"],
          maxAge: "3 days",
          features: [
            { name: "a", type: "int64", default: "x" },
            { name: "a", type: "bool" },
            { name: "m", type: "float64", default: "median" },
          ],
        },
      ],
      featureServices: [{ name: "s", features: ["nope", "v:a"] }],
    };
    const paths = issuesOf(def).map((i) => i.path);
    expect(paths).toEqual([
      "entities[1].name",
      "entities[1].joinKeys[0].type",
      "featureViews[0].entities[1]",
      "featureViews[0].maxAge",
      "featureViews[0].features[0].default",
      "featureViews[0].features[1].name",
      "featureViews[0].features[2].default",
      "featureServices[0].features[0]",
      // Not "featureServices[0].features[1]" (v:a): view v's own problems are listed; it was reported again as unknown.
    ]);
    const messages = issuesOf(def).map((i) => i.message);
    expect(messages).toContain('"median" needs statistics.m.median in view "v"');
    expect(messages).toContain('unknown entity "ghost"');
  });

  test("a feature named like a pushed row's time column or the view's join key, and a service listing a feature twice, are refused", () => {
    const def = {
      entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
      featureViews: [
        {
          name: "v",
          entities: ["driver"],
          features: [
            { name: "event_timestamp", type: "int64" },
            { name: "driver_id", type: "int64" },
          ],
        },
        { name: "w", entities: ["driver"], features: [{ name: "a", type: "int64" }] },
      ],
      featureServices: [{ name: "s", features: ["w:a", "w:a"] }],
    };
    expect(issuesOf(def).map((i) => [i.path, i.message.slice(0, 40)])).toEqual([
      ["featureViews[0].features[0].name", '"event_timestamp" names a pushed row\'s t'],
      ["featureViews[0].features[1].name", '"driver_id" is a join key of view "v"; a'],
      ["featureServices[0].features[1]", '"w:a" is listed twice'],
    ]);
  });

  test("a join key named like a pushed row's time column is refused (a push read it as the row's event time)", () => {
    const def = {
      entities: [
        { name: "ev", joinKeys: [{ name: "event_timestamp", type: "int64" }] },
        { name: "cr", joinKeys: [{ name: "created", type: "string" }, { name: "created_timestamp", type: "string" }] },
      ],
      featureViews: [
        { name: "e", entities: ["ev"], features: [{ name: "n", type: "int64" }] },
        { name: "c", entities: ["cr"], features: [{ name: "n", type: "int64" }] },
      ],
    };
    expect(issuesOf(def).map((i) => [i.path, i.message.slice(0, 40)])).toEqual([
      ["entities[0].joinKeys[0].name", '"event_timestamp" names a pushed row\'s t'],
      ["entities[1].joinKeys[0].name", '"created" names a pushed row\'s time colu'],
      ["entities[1].joinKeys[1].name", '"created_timestamp" names a pushed row\'s'],
    ]);
  });

  test("a feature or join key named like a member of every object (constructor, toString, __proto__) is refused", () => {
    const def = {
      entities: [{ name: "thing", joinKeys: [{ name: "valueOf", type: "string" }] }],
      featureViews: [
        {
          name: "things",
          entities: ["thing"],
          features: [
            { name: "constructor", type: "string" },
            { name: "toString", type: "int64" },
            { name: "__proto__", type: "float64" },
            { name: "construct", type: "int64" },
          ],
        },
      ],
    };
    expect(issuesOf(def).map((i) => [i.path, i.message.slice(0, 50)])).toEqual([
      ["entities[0].joinKeys[0].name", '"valueOf" is a name every JavaScript object alread'],
      ["featureViews[0].features[0].name", '"constructor" is a name every JavaScript object al'],
      ["featureViews[0].features[1].name", '"toString" is a name every JavaScript object alrea'],
      ["featureViews[0].features[2].name", '"__proto__" is a name every JavaScript object alre'],
    ]);
  });

  test("structural errors name the field: missing, extra, wrong shape", () => {
    const issues = issuesOf({ entities: [{ name: "d" }], featureViews: [{ name: "v", entities: ["d"], features: [{ name: "a", type: 1 }] }], extra: 1 });
    expect(issues).toContainEqual({ path: "extra", message: "Unexpected property" });
    expect(issues).toContainEqual({ path: "entities[0].joinKeys", message: "is required but missing" });
    expect(issues).toContainEqual({ path: "featureViews[0].features[0].type", message: "Expected string" });
    expect(issues.filter((i) => i.path === "entities[0].joinKeys")).toHaveLength(1);
  });

  test("names must be identifiers (they are part of storage keys)", () => {
    const def = base();
    def.featureViews[0]!.name = "bad/name";
    expect(issuesOf(def)[0]!.path).toBe("featureViews[0].name");
  });

  test("defaults must fit their feature's type, embeddings their dimension", () => {
    const def = base();
    (def.featureViews[0]!.features as unknown[]).push({ name: "e", type: "embedding(3)", default: [1, 2] });
    (def.featureViews[0]!.features as unknown[]).push({ name: "l", type: "string[]", default: ["a", 2] });
    expect(issuesOf(def)).toEqual([
      { path: "featureViews[0].features[2].default", message: "expected embedding(3), got 2 dimensions" },
      { path: "featureViews[0].features[3].default", message: "expected string[], element 1 is integer 2" },
    ]);
  });

  test("a median default must fit its feature's type (an int64 median of 1e20 was served as is, and wrapped over gRPC); versions stay below 2^31", () => {
    const def = base();
    (def.featureViews[0]!.features as unknown[]).push({ name: "big", type: "int64", default: "median" });
    const view = def.featureViews[0] as Record<string, unknown>;
    view["statistics"] = { big: { median: 1e20 } };
    const issues = issuesOf(def);
    expect(issues.map((i) => i.path)).toEqual(["featureViews[0].statistics.big.median"]);
    expect(issues[0]!.message).toContain("out of int64's range [-2^63, 2^63 − 1]: 100000000000000000000");
    // A median past 2^53 but within int64 is a default like any other: the integer it is, exact (a bigint).
    const wide = base();
    (wide.featureViews[0]!.features as unknown[]).push({ name: "big", type: "int64", default: "median" }, { name: "ids", type: "int64", default: "9223372036854775807" });
    (wide.featureViews[0] as Record<string, unknown>)["statistics"] = { big: { median: 2 ** 60 + 0.4 } };
    const features = compileRegistry(wide).views.get("stats")!.features;
    expect(features.find((f) => f.name === "big")!.defaultValue).toBe(2n ** 60n);
    expect(features.find((f) => f.name === "ids")!.defaultValue).toBe(2n ** 63n - 1n);
    const versioned = base();
    (versioned.featureViews[0] as Record<string, unknown>)["version"] = 2 ** 53 + 2;
    expect(issuesOf(versioned).map((i) => i.path)).toEqual(["featureViews[0].version"]);
  });

  test("statistics must refer to features of the view", () => {
    const def = { ...base(), featureViews: [{ ...base().featureViews[0]!, statistics: { ghost: { median: 1 } } }] };
    expect(issuesOf(def)).toEqual([{ path: "featureViews[0].statistics.ghost", message: 'no feature "ghost" in view "stats"' }]);
  });

  test("malformed YAML is a located error, not a crash", () => {
    expect(() => parseDefinitionsText("entities: [\n  - {name: x", "file.yaml")).toThrow(/file.yaml: not valid YAML\/JSON/);
  });

  test("a missing file is a clear error", async () => {
    await expect(loadRegistryFile("/nonexistent/registry.yaml")).rejects.toThrow(/registry file not found/);
  });

  test("a file that cannot be read (a directory in its place) is invalid_registry naming it, not an internal error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-registry-dir-"));
    try {
      // It was EISDIR thrown as is: a reload answered 500 "internal error; see the server log".
      const e = await loadRegistryFile(dir).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(QuiverError);
      expect((e as QuiverError).code).toBe("invalid_registry");
      expect((e as QuiverError).kind).toBe("invalid_argument");
      expect((e as QuiverError).path).toBe("(file)");
      expect((e as QuiverError).message).toContain(`registry file not readable: ${dir}: EISDIR`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("JSON definitions load too, and the digest tracks content", () => {
    const a = compileRegistry(parseDefinitionsText(JSON.stringify(base())));
    const b = compileRegistry(base());
    expect(a.digest).toBe(b.digest);
    const changed = base();
    changed.featureViews[0]!.maxAge = "2h";
    expect(compileRegistry(changed).digest).not.toBe(a.digest);
  });
});

describe("helpers", () => {
  test("durations", () => {
    expect(parseDurationMs("90s")).toBe(90_000);
    expect(parseDurationMs("1d")).toBe(86_400_000);
    expect(parseDurationMs("2w")).toBe(1_209_600_000);
    expect(parseDurationMs(30)).toBe(30_000);
    expect(parseDurationMs("1 day")).toBeUndefined();
    expect(parseDurationMs(-1)).toBeUndefined();
  });
  test("JSON pointers become dotted paths", () => {
    expect(pointerToPath("/featureViews/2/features/0/type")).toBe("featureViews[2].features[0].type");
    expect(pointerToPath("")).toBe("(root)");
  });
});

describe("vector index (index:)", () => {
  const withIndex = (index: unknown, features: unknown[] = [{ name: "city", type: "string" }, { name: "vec", type: "embedding(4)" }]) => ({
    entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
    featureViews: [{ name: "stats", entities: ["driver"], features, index }],
  });

  test("compiles with defaults filled in", () => {
    const spec = compileRegistry(withIndex({ feature: "vec" })).views.get("stats")!.index!;
    expect(spec).toMatchObject({ dim: 4, metric: "cosine", algorithm: "hnsw", M: 16, efConstruction: 200, efSearch: 64, maxElements: 10_000, embedder: undefined });
    expect(spec.feature.name).toBe("vec");
    expect(compileRegistry(withIndex(undefined)).views.get("stats")!.index).toBeUndefined();
  });

  test("names the path of an unknown feature, a feature that is not an embedding, and bad parameters", () => {
    expect(issuesOf(withIndex({ feature: "nope" }))).toEqual([{ path: "featureViews[0].index.feature", message: 'no feature "nope" in view "stats"' }]);
    expect(issuesOf(withIndex({ feature: "city" }))[0]!.message).toContain("is string; an index needs an embedding(<dim>) feature");
    const paths = (index: unknown) => issuesOf(withIndex(index)).map((i) => i.path);
    expect(paths({ feature: "vec", metric: "manhattan" })).toContain("featureViews[0].index.metric");
    expect(paths({ feature: "vec", M: 1 })).toContain("featureViews[0].index.M");
    expect(paths({ feature: "vec", efSearch: 0 })).toContain("featureViews[0].index.efSearch");
    expect(paths({ feature: "vec", maxElements: 2.5 })).toContain("featureViews[0].index.maxElements");
    expect(paths({ feature: "vec", M: 32, efConstruction: 16 })).toEqual(["featureViews[0].index.efConstruction"]);
    expect(paths({ feature: "vec", embedder: "word2vec" })).toContain("featureViews[0].index.embedder");
    expect(paths({ feature: "vec", colour: "red" })).toContain("featureViews[0].index.colour");
    expect(paths({ metric: "l2" })).toContain("featureViews[0].index.feature");
  });

  test("the example registry's claims view declares a 384-d cosine index with the built-in embedder", async () => {
    const r = await loadRegistryFile("src/registry/example-registry.yaml");
    expect(r.views.get("claims")!.index).toMatchObject({ dim: 384, metric: "cosine", embedder: "hashed-ngrams" });
  });
});

describe("push sources (pushSources:)", () => {
  const withSources = (pushSources: unknown[]) => ({
    entities: [
      { name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] },
      { name: "car", joinKeys: [{ name: "car_id", type: "string" }] },
    ],
    featureViews: [
      { name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64" }, { name: "city", type: "string" }] },
      { name: "trips", entities: ["driver"], features: [{ name: "trips", type: "int64" }, { name: "city", type: "string" }] },
      { name: "cars", entities: ["car"], features: [{ name: "rate", type: "int64" }, { name: "driver_id", type: "int64" }] },
    ],
    pushSources,
  });

  test("compiles with its views in order and the timestamp field (default event_timestamp); the digest covers them", () => {
    const r = compileRegistry(withSources([{ name: "driver_push", featureViews: ["trips", "stats"], timestampField: "event_ts" }, { name: "stats", featureViews: ["stats"] }]));
    const s = r.pushSources.get("driver_push")!;
    expect(s.views.map((v) => v.name)).toEqual(["trips", "stats"]);
    expect(s.timestampField).toBe("event_ts");
    expect(r.pushSources.get("stats")!.timestampField).toBe("event_timestamp");
    expect(compileRegistry(base()).pushSources.size).toBe(0);
    expect(compileRegistry(withSources([{ name: "driver_push", featureViews: ["trips", "stats"] }])).digest).not.toBe(r.digest);
  });

  test("refuses duplicate names, unknown or repeated views, an empty list, a view's name not listing it, and columns meaning two things, each with its path", () => {
    expect(issuesOf(withSources([
      { name: "p", featureViews: ["stats"] },
      { name: "p", featureViews: ["trips"] },
      { name: "q", featureViews: ["stats", "ghost", "stats"] },
      { name: "trips", featureViews: ["stats"] },
      { name: "r", featureViews: ["stats", "cars"] },
      { name: "s", featureViews: ["trips"], timestampField: "city" },
    ]))).toEqual([
      { path: "pushSources[1].name", message: 'duplicate push source "p"' },
      { path: "pushSources[2].featureViews[1]", message: 'unknown feature view "ghost"' },
      { path: "pushSources[2].featureViews[2]", message: '"stats" is listed twice' },
      { path: "pushSources[3].name", message: '"trips" is also a feature view\'s name, and a push source so named must list that view: Feast\'s /push with a view\'s name writes that view when no push source has the name' },
      { path: "pushSources[4].featureViews", message: 'column "rate" is a feature (float64) in view "stats" but a feature (int64) in view "cars"; a pushed frame\'s column feeds every view alike' },
      { path: "pushSources[4].featureViews", message: 'column "driver_id" is a join key (int64) in view "stats" but a feature (int64) in view "cars"; a pushed frame\'s column feeds every view alike' },
      { path: "pushSources[5].timestampField", message: '"city" is a feature or join key of view "trips"; the event-time column cannot be both' },
    ]);
    expect(issuesOf(withSources([{ name: "p", featureViews: [] }])).map((i) => i.path)).toEqual(["pushSources[0].featureViews"]);
    expect(issuesOf(withSources([{ name: "p", featureViews: ["stats"], timestampField: "bad-name" }])).map((i) => i.path)).toEqual(["pushSources[0].timestampField"]);
    expect(issuesOf(withSources([{ name: "p", featureViews: ["stats"], extra: 1 }])).map((i) => i.path)).toEqual(["pushSources[0].extra"]);
  });

  test("the example registry's push source feeds two views sharing customer_id, with a non-default timestamp field", async () => {
    const r = await loadRegistryFile("src/registry/example-registry.yaml");
    const s = r.pushSources.get("customer_events_push")!;
    expect(s.views.map((v) => v.name)).toEqual(["fraud_signals", "customer_profile"]);
    expect(s.timestampField).toBe("event_ts");
  });
});
