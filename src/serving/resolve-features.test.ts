import { describe, expect, test } from "bun:test";
import { QuiverError } from "../errors/index.ts";
import type { Registry } from "../registry/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { resolveFeatures } from "./resolve-features.ts";

const definition = {
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" as const }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64" as const }, { name: "city", type: "string" as const }] }],
};
const PATHS = { features: "features", featureService: "featureService" };
const resolve = (registry: Registry, features: unknown) => resolveFeatures(registry, features, undefined, PATHS);

describe("resolveFeatures remembers recent lists", () => {
  test("the same names (fresh strings, as JSON.parse makes them) give the same refs array", () => {
    const registry = compileRegistry(definition);
    const a = resolve(registry, JSON.parse('["stats:rate","stats:city"]'));
    const b = resolve(registry, JSON.parse('["stats:rate","stats:city"]'));
    expect(b).toBe(a);
    expect(a.map((r) => r.feature.name)).toEqual(["rate", "city"]);
  });

  test("another order, another length or another registry is another list", () => {
    const registry = compileRegistry(definition);
    const a = resolve(registry, ["stats:rate", "stats:city"]);
    const swapped = resolve(registry, ["stats:city", "stats:rate"]);
    expect(swapped).not.toBe(a);
    expect(swapped.map((r) => r.feature.name)).toEqual(["city", "rate"]);
    expect(resolve(registry, ["stats:rate"]).map((r) => r.feature.name)).toEqual(["rate"]);
    const reloaded = compileRegistry(definition);
    const c = resolve(reloaded, ["stats:rate", "stats:city"]);
    expect(c).not.toBe(a);
    expect(c[0]!.view).toBe(reloaded.views.get("stats")!);
  });

  test("a list with a bad name after a remembered one still fails, naming its position", () => {
    const registry = compileRegistry(definition);
    resolve(registry, ["stats:rate", "stats:city"]);
    for (const bad of [["stats:rate", "stats:nope"], ["stats:rate", 7], ["stats:rate", "stats:city", "stats:city2"]]) {
      let thrown: unknown;
      try {
        resolve(registry, bad);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(QuiverError);
      expect((thrown as QuiverError).path).toMatch(/^features\[\d\]$/);
    }
  });

  test("more distinct lists than it remembers: each still resolves right", () => {
    const registry = compileRegistry(definition);
    const lists = Array.from({ length: 20 }, (_, i) => Array.from({ length: i + 1 }, (_, j) => (j % 2 === 0 ? "stats:rate" : "stats:city")));
    for (let round = 0; round < 2; round++) {
      for (const names of lists) expect(resolve(registry, names).map((r) => r.feature.ref)).toEqual(names);
    }
  });
});
