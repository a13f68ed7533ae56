import { canonicalInt64, inInt64Range } from "../kv/int64.ts";
import { type Issue, invalidAll } from "../errors/index.ts";
import type { FeatureValue } from "../kv/kv-node.ts";
import { type JoinKeyType, keyPartHead, viewKeyPrefix } from "../kv/keys.ts";
import { digests } from "../runtime/digest.ts";
import type { FeatureViewDef, PushSourceDef, RegistryDef } from "./definitions.ts";
import { parseDurationMs } from "./durations.ts";
import { type CompiledFeature, type CompiledPushSource, type CompiledView, DEFAULT_TIMESTAMP_FIELD, type FeatureRef, type JoinKey, PUSH_TIME_COLUMNS, type Registry, type VectorIndexSpec } from "./registry.ts";
import { canonicalFor, checkerFor, holdsFloats, isNumeric, parseValueType, TYPE_NAMES, typeName, type ValueType, zeroValue } from "./value-types.ts";

/**
 * Compiles definitions whose structure is already checked (read-definitions.ts:
 * `validateRegistryDef`, or the start-up's worker, load-registry.ts) into a
 * Registry: references, types of defaults, vector indexes. Collects every
 * problem and throws one QuiverError (code `invalid_registry`) listing them
 * all, so an operator fixes a file in one pass. This module and its imports
 * hold no YAML parser and no schema validator: a server loads them only to
 * read its files, and every young collection walks all the code a process
 * holds (src/app.ts, on loading the gRPC edge).
 */
/**
 * Names every JavaScript object answers without holding them (`constructor`,
 * `toString`, `__proto__`, ...): rows and columns are plain objects keyed by
 * join-key and feature names, so a pushed row leaving out a feature named
 * `constructor` read Object's constructor function as its value (a 400 for a
 * valid row), and a mapped column named `__proto__` replaced the row's
 * prototype instead of holding a value.
 */
function isObjectMember(name: string): boolean {
  return Object.hasOwn(Object.prototype, name);
}

function objectMemberMessage(name: string): string {
  return `"${name}" is a name every JavaScript object already answers (Object.prototype.${name}); rows are objects keyed by these names, so choose another`;
}

export function compileRegistryDef(def: RegistryDef, now = Date.now()): Registry {
  const issues: Issue[] = [];

  const entities = new Map<string, readonly JoinKey[]>();
  const joinKeys = new Map<string, JoinKey>();
  def.entities.forEach((e, i) => {
    if (entities.has(e.name)) issues.push({ path: `entities[${i}].name`, message: `duplicate entity "${e.name}"` });
    const seen = new Set<string>();
    e.joinKeys.forEach((k, j) => {
      if (seen.has(k.name)) issues.push({ path: `entities[${i}].joinKeys[${j}].name`, message: `duplicate join key "${k.name}"` });
      if (isObjectMember(k.name)) issues.push({ path: `entities[${i}].joinKeys[${j}].name`, message: objectMemberMessage(k.name) });
      // Every push reads these columns as times: a key `event_timestamp` stamped each row with its own id (1001 ms,
      // 1970), so a second push of the entity tied and was ignored, and a key `created` refused every push.
      if (PUSH_TIME_COLUMNS.has(k.name)) issues.push({ path: `entities[${i}].joinKeys[${j}].name`, message: `"${k.name}" names a pushed row's time column; a join key so named would be read as the row's event time too` });
      seen.add(k.name);
      const other = joinKeys.get(k.name);
      if (other && other.type !== k.type) {
        issues.push({ path: `entities[${i}].joinKeys[${j}].type`, message: `join key "${k.name}" is ${other.type} in another entity; a join key has one type everywhere` });
      }
      joinKeys.set(k.name, compileJoinKey(k.name, k.type));
    });
    entities.set(e.name, e.joinKeys.map((k) => compileJoinKey(k.name, k.type)));
  });

  const views = new Map<string, CompiledView>();
  const refs = new Map<string, FeatureRef>();
  // Views whose own problems are listed: a service naming their features is not reported again for it.
  const broken = new Set<string>();
  def.featureViews.forEach((v, i) => {
    const path = `featureViews[${i}]`;
    if (views.has(v.name)) issues.push({ path: `${path}.name`, message: `duplicate feature view "${v.name}"` });
    const view = compileView(v, path, entities, issues);
    if (!view) {
      broken.add(v.name);
      return;
    }
    views.set(v.name, view);
    for (const f of view.features) refs.set(f.ref, { view, feature: f });
  });

  const services = new Map<string, readonly FeatureRef[]>();
  (def.featureServices ?? []).forEach((s, i) => {
    if (services.has(s.name)) issues.push({ path: `featureServices[${i}].name`, message: `duplicate feature service "${s.name}"` });
    const resolved: FeatureRef[] = [];
    s.features.forEach((r, j) => {
      const ref = refs.get(r);
      // Listed twice, every lookup of the service would be refused (two columns named alike).
      if (ref && resolved.includes(ref)) issues.push({ path: `featureServices[${i}].features[${j}]`, message: `"${r}" is listed twice` });
      else if (ref) resolved.push(ref);
      else if (!broken.has(r.slice(0, Math.max(0, r.indexOf(":"))))) issues.push({ path: `featureServices[${i}].features[${j}]`, message: unknownRefMessage(r, views) });
    });
    services.set(s.name, resolved);
  });

  const pushSources = new Map<string, CompiledPushSource>();
  (def.pushSources ?? []).forEach((s, i) => {
    const source = compilePushSource(s, `pushSources[${i}]`, views, broken, issues);
    if (pushSources.has(s.name)) issues.push({ path: `pushSources[${i}].name`, message: `duplicate push source "${s.name}"` });
    else if (source) pushSources.set(s.name, source);
  });

  if (issues.length > 0) throw invalidAll("invalid_registry", issues);
  return {
    project: def.project ?? "default",
    views,
    refs,
    services,
    pushSources,
    joinKeys,
    definition: def,
    digest: digests.sha256Hex(JSON.stringify(def)).slice(0, 16),
    loadedAt: now,
  };
}

/** Why a `view:feature` string does not resolve, phrased for the person who wrote it. */
export function unknownRefMessage(ref: string, views: ReadonlyMap<string, CompiledView>): string {
  const colon = ref.indexOf(":");
  if (colon <= 0) return `"${ref}" is not a feature reference; expected "<feature_view>:<feature>"`;
  const view = views.get(ref.slice(0, colon));
  if (!view) return `unknown feature view "${ref.slice(0, colon)}"`;
  return `feature view "${view.name}" has no feature "${ref.slice(colon + 1)}"`;
}

/**
 * A push source: its views exist, each listed once; a name that is also a
 * view's lists that view (Feast's `/push` with a view's name writes that view
 * when no push source is declared, so such a name must not start meaning
 * other views); and the frame's columns mean one thing across its views (a
 * column is one view's join key and another's feature, or two views' features
 * of different types, or the event-time column and a feature: refused).
 */
function compilePushSource(s: PushSourceDef, path: string, views: ReadonlyMap<string, CompiledView>, broken: ReadonlySet<string>, issues: Issue[]): CompiledPushSource | undefined {
  const before = issues.length;
  const listed: CompiledView[] = [];
  s.featureViews.forEach((name, j) => {
    const view = views.get(name);
    if (view && listed.includes(view)) issues.push({ path: `${path}.featureViews[${j}]`, message: `"${name}" is listed twice` });
    else if (view) listed.push(view);
    else if (!broken.has(name)) issues.push({ path: `${path}.featureViews[${j}]`, message: `unknown feature view "${name}"` });
  });
  if (views.has(s.name) && !s.featureViews.includes(s.name)) {
    issues.push({ path: `${path}.name`, message: `"${s.name}" is also a feature view's name, and a push source so named must list that view: Feast's /push with a view's name writes that view when no push source has the name` });
  }
  const timestampField = s.timestampField ?? DEFAULT_TIMESTAMP_FIELD;
  if (isObjectMember(timestampField)) issues.push({ path: `${path}.timestampField`, message: objectMemberMessage(timestampField) });
  // What each column means across the views: a join key of a type, or a feature of a type (first view that says so).
  const meaning = new Map<string, { what: string; view: string }>();
  for (const view of listed) {
    const say = (column: string, what: string) => {
      const other = meaning.get(column);
      if (other === undefined) meaning.set(column, { what, view: view.name });
      else if (other.what !== what) issues.push({ path: `${path}.featureViews`, message: `column "${column}" is ${other.what} in view "${other.view}" but ${what} in view "${view.name}"; a pushed frame's column feeds every view alike` });
    };
    for (const k of view.joinKeys) say(k.name, `a join key (${k.type})`);
    for (const f of view.features) say(f.name, `a feature (${f.typeName})`);
    if (view.featureIndex.has(timestampField) || view.joinKeys.some((k) => k.name === timestampField)) {
      issues.push({ path: `${path}.timestampField`, message: `"${timestampField}" is a feature or join key of view "${view.name}"; the event-time column cannot be both` });
    }
  }
  if (issues.length > before) return undefined;
  return { name: s.name, views: listed, timestampField };
}

const ascii = new TextEncoder();

/** A join key with its prepared key bytes (the registry builds every JoinKey through this). */
export function compileJoinKey(name: string, type: JoinKeyType): JoinKey {
  return { name, type, partHead: ascii.encode(keyPartHead(name, type)) };
}

function compileView(v: FeatureViewDef, path: string, entities: Map<string, readonly JoinKey[]>, issues: Issue[]): CompiledView | undefined {
  const before = issues.length;
  const joinKeys: JoinKey[] = [];
  v.entities.forEach((name, j) => {
    const keys = entities.get(name);
    if (!keys) issues.push({ path: `${path}.entities[${j}]`, message: `unknown entity "${name}"` });
    else for (const k of keys) if (!joinKeys.some((x) => x.name === k.name)) joinKeys.push(k);
  });
  const maxAgeMs = v.maxAge === undefined ? 0 : parseDurationMs(v.maxAge);
  if (maxAgeMs === undefined) issues.push({ path: `${path}.maxAge`, message: `expected seconds or a duration like "90s", "15m", "1h", "7d", got ${JSON.stringify(v.maxAge)}` });

  const features: CompiledFeature[] = [];
  const featureIndex = new Map<string, CompiledFeature>();
  v.features.forEach((f, j) => {
    const fpath = `${path}.features[${j}]`;
    if (featureIndex.has(f.name)) issues.push({ path: `${fpath}.name`, message: `duplicate feature "${f.name}" in view "${v.name}"` });
    // A pushed row's columns are its join keys, its features and its times: a feature named like either was both.
    if (isObjectMember(f.name)) issues.push({ path: `${fpath}.name`, message: objectMemberMessage(f.name) });
    if (PUSH_TIME_COLUMNS.has(f.name)) issues.push({ path: `${fpath}.name`, message: `"${f.name}" names a pushed row's time column; a feature so named would be read as the row's event time too` });
    if (joinKeys.some((k) => k.name === f.name)) issues.push({ path: `${fpath}.name`, message: `"${f.name}" is a join key of view "${v.name}"; a feature so named would always hold the key (and Feast's answers name two columns so)` });
    const type = parseValueType(f.type);
    if (!type) {
      issues.push({ path: `${fpath}.type`, message: `expected one of ${TYPE_NAMES.join(", ")}, got "${f.type}"` });
      return;
    }
    const check = checkerFor(type);
    const canonical = canonicalFor(type);
    const defaultValue = resolveDefault(v, f.name, f.default, type, `${fpath}.default`, check, canonical, issues);
    const feature: CompiledFeature = {
      name: f.name,
      index: j,
      type,
      typeName: typeName(type),
      defaultValue,
      check,
      canonical,
      floats: holdsFloats(type),
      ref: `${v.name}:${f.name}`,
      fullName: `${v.name}__${f.name}`,
    };
    features.push(feature);
    featureIndex.set(f.name, feature);
  });
  for (const stat of Object.keys(v.statistics ?? {})) {
    if (!v.features.some((f) => f.name === stat)) issues.push({ path: `${path}.statistics.${stat}`, message: `no feature "${stat}" in view "${v.name}"` });
  }
  const index = v.index === undefined ? undefined : compileIndex(v, featureIndex, `${path}.index`, issues);
  if (issues.length > before) return undefined;
  const version = v.version ?? 1;
  const keyPrefix = viewKeyPrefix(v.name, version);
  return {
    name: v.name,
    version,
    keyPrefix,
    keyPrefixBytes: ascii.encode(keyPrefix),
    joinKeys,
    joinKeySignature: joinKeys.map((k) => k.name).join(","),
    features,
    featureIndex,
    defaults: features.map((f) => f.defaultValue),
    maxAgeMs: maxAgeMs ?? 0,
    index,
  };
}

/** Defaults of `index:`; efSearch 64 gives recall@10 ≥ 0.95 on 384-d sentence embeddings (test/vector-recall.test.ts). */
export const INDEX_DEFAULTS = { metric: "cosine", algorithm: "hnsw", M: 16, efConstruction: 200, efSearch: 64, maxElements: 10_000 } as const;

function compileIndex(v: FeatureViewDef, features: ReadonlyMap<string, CompiledFeature>, path: string, issues: Issue[]): VectorIndexSpec | undefined {
  const def = v.index!;
  const feature = features.get(def.feature);
  if (!feature) {
    issues.push({ path: `${path}.feature`, message: `no feature "${def.feature}" in view "${v.name}"` });
    return undefined;
  }
  if (feature.type.kind !== "embedding") {
    issues.push({ path: `${path}.feature`, message: `"${def.feature}" is ${feature.typeName}; an index needs an embedding(<dim>) feature` });
    return undefined;
  }
  const M = def.M ?? INDEX_DEFAULTS.M;
  const efConstruction = def.efConstruction ?? INDEX_DEFAULTS.efConstruction;
  if (efConstruction < M) issues.push({ path: `${path}.efConstruction`, message: `must be at least M (${M}), got ${efConstruction}` });
  return {
    feature,
    dim: feature.type.dim,
    metric: def.metric ?? INDEX_DEFAULTS.metric,
    algorithm: def.algorithm ?? INDEX_DEFAULTS.algorithm,
    M,
    efConstruction,
    efSearch: def.efSearch ?? INDEX_DEFAULTS.efSearch,
    maxElements: def.maxElements ?? INDEX_DEFAULTS.maxElements,
    embedder: def.embedder,
  };
}

/** Explicit default, `median`, or derived: numbers 0, strings the most common value, bool false, arrays empty. */
function resolveDefault(
  v: FeatureViewDef,
  feature: string,
  declared: unknown,
  type: ValueType,
  path: string,
  check: (x: unknown) => string | undefined,
  canonical: (x: unknown) => FeatureValue,
  issues: Issue[],
): FeatureValue {
  const stats = v.statistics?.[feature];
  if (declared === "median" && type.kind !== "string") {
    if (!isNumeric(type)) {
      issues.push({ path, message: `"median" needs a numeric feature, this one is ${typeName(type)}` });
      return zeroValue(type);
    }
    if (stats?.median === undefined) {
      issues.push({ path, message: `"median" needs statistics.${feature}.median in view "${v.name}"` });
      return zeroValue(type);
    }
    const value = type.kind === "int64" ? int64Median(stats.median) : stats.median;
    // Checked as an explicit default is: a median of 1e20 on an int64 feature was served as is over HTTP and wrapped
    // modulo 2^64 over gRPC.
    const problem = check(value);
    if (problem) issues.push({ path: path.replace(/\.features\[\d+\]\.default$/, `.statistics.${feature}.median`), message: problem });
    return problem ? zeroValue(type) : canonical(value);
  }
  if (declared !== undefined) {
    if (declared === null) return null;
    const problem = check(declared);
    if (problem) issues.push({ path, message: problem });
    return freeze(problem ? (declared as FeatureValue) : canonical(declared));
  }
  if (stats?.mostCommon !== undefined) {
    const problem = check(stats.mostCommon);
    if (problem) issues.push({ path: path.replace(/\.features\[\d+\]\.default$/, `.statistics.${feature}.mostCommon`), message: problem });
    return freeze(problem ? (stats.mostCommon as FeatureValue) : canonical(stats.mostCommon));
  }
  return zeroValue(type);
}

/**
 * An int64 feature's median as its default: rounded, and past 2^53 the
 * integer that float is, as a bigint (src/kv/int64.ts) — a median of 1e18 is
 * an int64; one beyond int64 stays a number for the check to refuse.
 */
function int64Median(median: number): number | bigint {
  const r = Math.round(median);
  if (Number.isSafeInteger(r) || !Number.isFinite(r)) return r;
  const b = BigInt(r);
  return inInt64Range(b) ? canonicalInt64(b) : r;
}

function freeze(v: FeatureValue): FeatureValue {
  return Array.isArray(v) ? Object.freeze([...v]) : v;
}
