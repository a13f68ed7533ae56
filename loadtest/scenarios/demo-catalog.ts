import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { compileRegistry, parseDefinitionsText } from "../../src/registry/read-definitions.ts";
import { demoCounts } from "../../src/serving/demo-data.ts";
import type { KeySpace } from "../template.ts";

/**
 * The feature views of src/registry/example-registry.yaml and the key spaces of the demo data
 * (src/api/http/README.md): drivers 1001.., customers "c0"... Scenarios need only names,
 * types and key spaces, so the registry is reduced to those.
 */
export type FeatureType = "int64" | "float64" | "string" | "bool" | "int64[]" | "float64[]" | "string[]" | `embedding(${number})`;

export interface JoinKeyInfo {
  readonly name: string;
  /** Index into DEMO_KEY_SPACES. */
  readonly space: number;
}

export interface ViewInfo {
  readonly name: string;
  readonly joinKeys: readonly JoinKeyInfo[];
  readonly features: readonly { readonly name: string; readonly type: FeatureType }[];
}

/** How many customers and claims the demo data loads at most, whatever --demo-entities (src/serving/demo-data.ts). */
const DEMO_CAPS = demoCounts(Number.POSITIVE_INFINITY);

export const DEMO_KEY_SPACES: readonly KeySpace[] = [
  { kind: "int", base: 1001 },
  { kind: "string", prefix: "c", size: DEMO_CAPS.customers },
  { kind: "int", base: 1, size: DEMO_CAPS.claims },
];

/** Which demo key space each join key draws from (see src/serving/demo-data.ts). */
const SPACE_OF_JOIN_KEY: Readonly<Record<string, number>> = { driver_id: 0, customer_id: 1, claim_id: 2 };

const EXAMPLE_REGISTRY = resolve(import.meta.dir, "../../src/registry/example-registry.yaml");

/** The example registry's views, read from the registry file itself so the two cannot drift. */
export const DEMO_VIEWS: readonly ViewInfo[] = [...compileRegistry(parseDefinitionsText(readFileSync(EXAMPLE_REGISTRY, "utf8"), EXAMPLE_REGISTRY)).views.values()].map(
  (v) => ({
    name: v.name,
    joinKeys: v.joinKeys.map((k) => {
      const space = SPACE_OF_JOIN_KEY[k.name];
      if (space === undefined) throw new Error(`demo catalogue: join key "${k.name}" of ${v.name} has no demo key space`);
      return { name: k.name, space };
    }),
    features: v.features.map((f) => ({ name: f.name, type: f.typeName as FeatureType })),
  }),
);

export function findView(name: string): ViewInfo {
  const v = DEMO_VIEWS.find((x) => x.name === name);
  if (v === undefined) throw new Error(`--view: unknown feature view "${name}" (known: ${DEMO_VIEWS.map((x) => x.name).join(", ")})`);
  return v;
}

/** Feature names to request: all of the view's, or the `--features` subset (checked). */
export function pickFeatures(view: ViewInfo, names: readonly string[] | undefined): readonly ViewInfo["features"][number][] {
  if (names === undefined || names.length === 0) return view.features;
  return names.map((n) => {
    const f = view.features.find((x) => x.name === n);
    if (f === undefined) throw new Error(`--features: "${n}" is not a feature of ${view.name}`);
    return f;
  });
}
