import { invalid, unavailable, unknownName } from "../errors/index.ts";
import type { FeatureValue } from "../kv/kv-node.ts";
import { type CompiledView, describeValue } from "../registry/index.ts";
import type { AttributeTable } from "./attributes.ts";
import { isFilterable } from "./attributes.ts";

/** One validated filter condition: the feature equals one of `values`. */
export interface FilterCondition {
  readonly feature: string;
  readonly values: readonly FeatureValue[];
}

const MAX_FILTER_VALUES = 1000;

/**
 * Parses `filter: { "verdict": "false", "language": ["en", "pt"] }`: each
 * entry names a scalar feature of the view and a value (or a list of accepted
 * values) of its type. Every problem is a 400 naming `filter.<feature>`.
 */
export function parseFilter(raw: unknown, view: CompiledView, path = "filter"): FilterCondition[] | undefined {
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw invalid("invalid_request", path, `expected an object of feature → value, got ${describeValue(raw)}`);
  const out: FilterCondition[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const at = `${path}.${name}`;
    const f = view.featureIndex.get(name);
    if (!f) throw unknownName("unknown_feature", at, `feature view "${view.name}" has no feature "${name}"`);
    if (!isFilterable(f)) throw invalid("invalid_request", at, `"${name}" is ${f.typeName}; filters test int64, float64, string and bool features`);
    const values = Array.isArray(value) ? value : [value];
    if (values.length === 0) throw invalid("invalid_request", at, "an empty list matches nothing; leave the feature out instead");
    if (values.length > MAX_FILTER_VALUES) throw invalid("invalid_request", at, `${values.length} values; the limit is ${MAX_FILTER_VALUES}`);
    values.forEach((v, i) => {
      const problem = f.check(v);
      if (problem) throw invalid("invalid_request", Array.isArray(value) ? `${at}[${i}]` : at, problem);
    });
    // In stored form (an int64 given as text or past 2^53 compares equal to the stored value).
    out.push({ feature: name, values: values.map(f.canonical) });
  }
  return out.length === 0 ? undefined : out;
}

/**
 * The label predicate hnswlib calls during its graph walk: array reads only.
 * Built per request because it binds that request's values.
 */
export function filterPredicate(conditions: readonly FilterCondition[] | undefined, table: AttributeTable): ((label: number) => boolean) | undefined {
  if (!conditions) return undefined;
  const tests = conditions.map((c) => {
    const col = table.column(c.feature);
    // A feature the registry just added: the index serving until its rebuild does not hold it yet.
    if (col === undefined) throw unavailable(`filter.${c.feature}: the vector index is being rebuilt for the new definition; retry shortly`);
    if (c.values.length === 1) {
      const v = c.values[0];
      return (label: number) => col[label] === v;
    }
    const set = new Set(c.values);
    return (label: number) => set.has(col[label] as FeatureValue);
  });
  if (tests.length === 1) return tests[0]!;
  return (label) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(label)) return false;
    return true;
  };
}
