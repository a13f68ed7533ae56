import type { Registry } from "../../src/registry/index.ts";
import { compileRegistry } from "../../src/registry/read-definitions.ts";

export interface ViewSketch {
  readonly name: string;
  readonly version?: number;
  readonly features: readonly { readonly name: string; readonly type: string }[];
}

/** A registry of views over one `driver` entity, for tests of what a reload changes. */
export function driverViews(views: readonly ViewSketch[]): Registry {
  return compileRegistry({
    entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
    featureViews: views.map((v) => ({ name: v.name, entities: ["driver"], ...(v.version ? { version: v.version } : {}), features: [...v.features] })),
  });
}
