import type { FeatureValue } from "../kv/kv-node.ts";
import type { CompiledFeature, CompiledView } from "../registry/index.ts";

/** Feature kinds a match filter can test (equality on one value). */
const FILTERABLE = new Set(["int64", "float64", "string", "bool"]);

export function isFilterable(f: CompiledFeature): boolean {
  return FILTERABLE.has(f.type.kind);
}

/**
 * The view's scalar feature values by label, held beside the index because
 * hnswlib's filter callback runs synchronously inside the graph walk: it can
 * test a column entry, it cannot read the store. Columnar so a filter on one
 * feature touches one array.
 */
export class AttributeTable {
  private readonly columns = new Map<string, FeatureValue[]>();
  private readonly features: readonly CompiledFeature[];

  constructor(view: CompiledView) {
    this.features = view.features.filter(isFilterable);
    for (const f of this.features) this.columns.set(f.name, []);
  }

  set(label: number, values: readonly FeatureValue[]): void {
    for (const f of this.features) this.columns.get(f.name)![label] = values[f.index] ?? null;
  }

  clear(label: number): void {
    for (const col of this.columns.values()) col[label] = null;
  }

  /** The column of a filterable feature, or undefined. */
  column(feature: string): readonly FeatureValue[] | undefined {
    return this.columns.get(feature);
  }
}
