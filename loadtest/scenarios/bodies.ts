import type { Prng } from "../prng.ts";
import { keyRef } from "../template.ts";
import type { FeatureType, ViewInfo } from "./demo-catalog.ts";

/**
 * Request bodies of the HTTP API (src/api/http/README.md) with key placeholders. Exported so
 * tests can check them against test/fixtures, which the k6 scripts load too.
 */

type Feature = ViewInfo["features"][number];

/** POST /v1/lookup, row form: one object per entity row. */
export function lookupBody(view: ViewInfo, features: readonly Feature[], rows: number): Record<string, unknown> {
  const entities: Record<string, string>[] = [];
  for (let r = 0; r < rows; r++) {
    const row: Record<string, string> = {};
    for (const k of view.joinKeys) row[k.name] = keyRef(r, k.space);
    entities.push(row);
  }
  return { features: featureRefs(view, features), entities, fillDefaults: true };
}

/** POST /get-online-features (Feast): columnar entities. */
export function feastBody(view: ViewInfo, features: readonly Feature[], rows: number): Record<string, unknown> {
  const entities: Record<string, string[]> = {};
  for (const k of view.joinKeys) {
    const col: string[] = [];
    for (let r = 0; r < rows; r++) col.push(keyRef(r, k.space));
    entities[k.name] = col;
  }
  return { features: featureRefs(view, features), entities };
}

/** POST /v1/push: whole rows with typed values; the server stamps the event time. */
export function pushBody(view: ViewInfo, rows: number, rng: Prng): Record<string, unknown> {
  const out: Record<string, unknown>[] = [];
  for (let r = 0; r < rows; r++) {
    const row: Record<string, unknown> = {};
    for (const k of view.joinKeys) row[k.name] = keyRef(r, k.space);
    for (const f of view.features) row[f.name] = sampleValue(f.type, rng);
    out.push(row);
  }
  return { featureView: view.name, rows: out };
}

export function featureRefs(view: ViewInfo, features: readonly Feature[]): string[] {
  return features.map((f) => `${view.name}:${f.name}`);
}

const WORDS = ["sedan", "suv", "van", "paris", "lyon", "berlin", "madrid", "books", "games", "food"];

/** A plausible value of a feature type. */
export function sampleValue(type: FeatureType, rng: Prng): unknown {
  switch (type) {
    case "int64":
      return rng.nextInt(1000);
    case "float64":
      return Math.round(rng.nextFloat() * 10000) / 10000;
    case "bool":
      return rng.nextFloat() < 0.5;
    case "string":
      return WORDS[rng.nextInt(WORDS.length)];
    case "int64[]":
      return [rng.nextInt(100000), rng.nextInt(100000), rng.nextInt(100000)];
    case "float64[]":
      return [Math.round(rng.nextFloat() * 500) / 100, Math.round(rng.nextFloat() * 500) / 100];
    case "string[]":
      return [WORDS[rng.nextInt(WORDS.length)], WORDS[rng.nextInt(WORDS.length)]];
    default: {
      const dim = Number(/^embedding\((\d+)\)$/.exec(type)?.[1] ?? 0);
      return Array.from({ length: dim }, () => Math.round((rng.nextFloat() * 2 - 1) * 1000) / 1000);
    }
  }
}
