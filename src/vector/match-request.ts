import { invalid, unknownName } from "../errors/index.ts";
import { type CompiledView, describeValue, type FeatureRef, type Registry } from "../registry/index.ts";
import { featureListFacts, keyPart, resolveFeatures, type ServingLimits } from "../serving/index.ts";
import { normalise } from "./hashed-ngram-embedder.ts";
import { type FilterCondition, parseFilter } from "./match-filter.ts";
import { vectorProblem } from "./vector-index.ts";

/** The query of a match: a vector, an entity whose stored embedding is the query, or text to embed. */
export type MatchQueryInput =
  | { readonly kind: "vector"; readonly vector: readonly number[] }
  | { readonly kind: "entity"; readonly entityKey: string }
  | { readonly kind: "text"; readonly text: string };

/** A validated match request, transport-neutral (HTTP today, gRPC `Match` next). */
export interface MatchQuery {
  readonly view: CompiledView;
  readonly query: MatchQueryInput;
  readonly k: number;
  /** Only matches scoring at least this (see vector-index.ts `scoreOf`). */
  readonly minScore: number | undefined;
  readonly filter: readonly FilterCondition[] | undefined;
  /** Features joined onto each match (views sharing the indexed view's join keys). */
  readonly refs: readonly FeatureRef[];
  /** Overrides the view's efSearch for this query. */
  readonly efSearch: number | undefined;
}

export const MAX_K = 1000;
export const MAX_TEXT_CHARS = 10_000;
const FIELDS = new Set(["view", "vector", "entity", "text", "k", "minScore", "filter", "features", "efSearch"]);
/** The feature list's field, as resolveFeatures names it in errors (a match names no service). */
const MATCH_FEATURES = { features: "features", featureService: "featureService" };

/**
 * Validates a match request given as plain data (parsed JSON, or a gRPC
 * message turned into one). Every problem is a 400 naming the field. The
 * features joined onto the matches are a lookup of up to `k` rows, held to
 * the lookups' `limits`.
 */
export function parseMatchRequest(body: unknown, registry: Registry, limits: ServingLimits): MatchQuery {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid("invalid_request", "(body)", `expected a JSON object, got ${describeValue(body)}`);
  const b = body as Record<string, unknown>;
  for (const name of Object.keys(b)) if (!FIELDS.has(name)) throw invalid("invalid_request", name, `unknown field; expected one of ${[...FIELDS].join(", ")}`);

  if (typeof b.view !== "string") throw invalid("invalid_request", "view", `expected the name of a feature view with an index, got ${describeValue(b.view)}`);
  const view = registry.views.get(b.view);
  if (!view) throw unknownName("unknown_feature_view", "view", `unknown feature view "${b.view}"`);
  const spec = view.index;
  if (!spec) throw invalid("invalid_request", "view", `feature view "${view.name}" has no vector index (declare index: in the registry)`);

  const given = ["vector", "entity", "text"].filter((f) => b[f] !== undefined);
  if (given.length !== 1) throw invalid("invalid_request", given[1] ?? "vector", given.length === 0 ? "give the query as one of vector, entity or text" : `give only one of vector, entity or text, not ${given.join(" and ")}`);
  let query: MatchQueryInput;
  if (b.vector !== undefined) {
    if (!Array.isArray(b.vector)) throw invalid("invalid_vector", "vector", `expected an array of ${spec.dim} numbers, got ${describeValue(b.vector)}`);
    // An integer literal past 2^53 is parsed exactly, as a bigint: taken as its float64, as an embedding's push takes it
    // (registry canonicalFor). Refused as "not a finite number" before.
    const vector = b.vector.some((x) => typeof x === "bigint") ? b.vector.map((x) => (typeof x === "bigint" ? Number(x) : x)) : b.vector;
    const problem = vectorProblem(vector, spec.dim, spec.metric);
    if (problem) throw invalid("invalid_vector", "vector", problem);
    query = { kind: "vector", vector: vector as number[] };
  } else if (b.entity !== undefined) {
    const e = b.entity;
    if (e === null || typeof e !== "object" || Array.isArray(e)) throw invalid("invalid_entity", "entity", `expected an object of join keys, got ${describeValue(e)}`);
    const obj = e as Record<string, unknown>;
    for (const name of Object.keys(obj)) if (!view.joinKeys.some((k) => k.name === name)) throw invalid("invalid_entity", `entity.${name}`, `not a join key of "${view.name}" (${view.joinKeys.map((k) => k.name).join(", ")})`);
    const entityKey = view.joinKeys.map((k) => keyPart(k, obj[k.name], `entity.${k.name}`)).join(";");
    query = { kind: "entity", entityKey };
  } else {
    if (typeof b.text !== "string" || b.text.trim() === "") throw invalid("invalid_request", "text", `expected non-empty text, got ${describeValue(b.text)}`);
    if (b.text.length > MAX_TEXT_CHARS) throw invalid("invalid_request", "text", `${b.text.length} characters; the limit is ${MAX_TEXT_CHARS}`);
    if (!spec.embedder) throw invalid("invalid_request", "text", `feature view "${view.name}" has no embedder (index.embedder); send a vector`);
    // The hashed-ngrams embedder reads letters and digits only; for none it answered a fixed fallback vector, which
    // matched whatever claims lay nearest that direction ("!!!???" answered 200 with unrelated claims, the best at 0.14).
    if (spec.embedder === "hashed-ngrams" && normalise(b.text) === "") throw invalid("invalid_request", "text", "has no letters or digits: the hashed-ngrams embedder has nothing to embed");
    query = { kind: "text", text: b.text };
  }

  const k = optionalInt(b.k, "k", 1, MAX_K) ?? 10;
  const efSearch = optionalInt(b.efSearch, "efSearch", 1, 4096);
  let minScore: number | undefined;
  if (b.minScore !== undefined) {
    if (typeof b.minScore !== "number" || !Number.isFinite(b.minScore)) throw invalid("invalid_request", "minScore", `expected a finite number, got ${describeValue(b.minScore)}`);
    minScore = b.minScore;
  }
  const filter = parseFilter(b.filter, view);
  const refs = b.features === undefined ? [] : resolveFeatures(registry, b.features, undefined, MATCH_FEATURES);
  refs.forEach((r, i) => {
    if (r.view.joinKeySignature !== view.joinKeySignature) {
      throw invalid("invalid_request", `features[${i}]`, `"${r.feature.ref}" is keyed by ${r.view.joinKeySignature}; matches of "${view.name}" are keyed by ${view.joinKeySignature}`);
    }
  });
  if (refs.length > 0) {
    checkColumnNames(refs);
    checkJoinSize(k, refs, limits);
  }
  return { view, query, k, minScore, filter, refs, efSearch };
}

/**
 * A match answers its joined features under their bare names (featureNames),
 * so, as a lookup without full feature names, it refuses a feature asked for
 * twice and two views' features of one name: both were answered as two
 * columns of one name, and a client reading them into a map kept one.
 */
function checkColumnNames(refs: readonly FeatureRef[]): void {
  if (featureListFacts(refs).repeatedName < 0) return;
  const seen = new Map<string, FeatureRef>();
  refs.forEach((r, i) => {
    const first = seen.get(r.feature.name);
    if (first === undefined) seen.set(r.feature.name, r);
    else if (first.feature.ref === r.feature.ref) throw invalid("feature_name_collision", `features[${i}]`, `"${r.feature.ref}" is asked for twice; each feature may be named once`);
    else throw invalid("feature_name_collision", `features[${i}]`, `"${r.feature.ref}" and "${first.feature.ref}" would both answer a column "${r.feature.name}"; join one of them`);
  });
}

/**
 * The join is a lookup of up to `k` rows: held to --max-rows and
 * --max-lookup-values as a lookup is. It was not, and k 500 joining an
 * embedding(384) answered 1.65 MB under limits of 100 rows and 10,000 values.
 */
function checkJoinSize(k: number, refs: readonly FeatureRef[], limits: ServingLimits): void {
  if (k > limits.maxRows) throw invalid("too_many_rows", "k", `${k} matches with features joined; the limit is ${limits.maxRows} rows per lookup (--max-rows)`);
  const perRow = featureListFacts(refs).valuesPerRow;
  const values = k * perRow;
  if (values > limits.maxValues) {
    throw invalid("too_many_values", "features", `${k} matches × ${refs.length} features (${perRow} values, an embedding counting its dimensions) is ${values} values; the limit is ${limits.maxValues} per lookup (--max-lookup-values): lower k or join fewer features`);
  }
}

function optionalInt(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw invalid("invalid_request", field, `expected an integer from ${min} to ${max}, got ${describeValue(v)}`);
  return v;
}
