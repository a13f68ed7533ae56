import { invalid, unknownName } from "../errors/index.ts";
import { describeValue, type FeatureRef, type Registry, unknownRefMessage } from "../registry/index.ts";

/** Most features one request may name; protects the server from absurd plans. */
export const MAX_FEATURES_PER_REQUEST = 2000;

/** How a request names its feature list and feature service fields (a LookupDialect is one): the paths in error messages. */
export interface FeatureFields {
  readonly features: string;
  readonly featureService: string;
}

/**
 * Resolves a request's feature list or feature service to references. Exactly
 * one of the two must be given; every unknown name is an `unknown_name` error naming it.
 */
export function resolveFeatures(
  registry: Registry,
  features: unknown,
  service: unknown,
  fields: FeatureFields,
): readonly FeatureRef[] {
  // An explicit null is absent, as in Feast's server (`Optional[...] = None`).
  if (features === null) features = undefined;
  if (service === null) service = undefined;
  if (features !== undefined && service !== undefined) {
    throw invalid("invalid_request", fields.features, `give either ${fields.features} or ${fields.featureService}, not both`);
  }
  if (service !== undefined) {
    if (typeof service !== "string") throw invalid("invalid_request", fields.featureService, `expected a feature service name, got ${describeValue(service)}`);
    const refs = registry.services.get(service);
    if (!refs) throw unknownName("unknown_feature_service", fields.featureService, `unknown feature service "${service}"`);
    return refs;
  }
  if (features === undefined) throw invalid("invalid_request", fields.features, `is required (or ${fields.featureService})`);
  if (!Array.isArray(features)) throw invalid("invalid_request", fields.features, `expected a list of "<feature_view>:<feature>", got ${describeValue(features)}`);
  if (features.length === 0) throw invalid("invalid_request", fields.features, "must name at least one feature");
  if (features.length > MAX_FEATURES_PER_REQUEST) throw invalid("invalid_request", fields.features, `${features.length} features; the limit is ${MAX_FEATURES_PER_REQUEST}`);
  const memo = memoOf(registry);
  const seen = memo.find(features);
  if (seen !== undefined) return seen;
  const out = new Array<FeatureRef>(features.length);
  for (let i = 0; i < features.length; i++) {
    const name = features[i];
    const ref = typeof name === "string" ? registry.refs.get(name) : undefined;
    if (ref === undefined) {
      const message = typeof name === "string" ? unknownRefMessage(name, registry.views) : `expected "<feature_view>:<feature>", got ${describeValue(name)}`;
      const path = `${fields.features}[${i}]`;
      // A malformed reference is bad input; a well-formed one naming nothing is an unknown name (gRPC NOT_FOUND).
      if (typeof name !== "string" || name.indexOf(":") <= 0) throw invalid("unknown_feature", path, message);
      throw unknownName(message.startsWith("unknown feature view") ? "unknown_feature_view" : "unknown_feature", path, message);
    }
    out[i] = ref;
  }
  memo.remember(features as string[], out);
  return out;
}

/** Feature lists remembered per registry (a reload brings a new registry, and so a new memo). */
const memos = new WeakMap<Registry, RefsMemo>();

function memoOf(registry: Registry): RefsMemo {
  let m = memos.get(registry);
  if (m === undefined) {
    m = new RefsMemo();
    memos.set(registry, m);
  }
  return m;
}

/** Lists of at most this many names are remembered; longer ones resolve every time. */
const MEMO_MAX_NAMES = 64;
/** Distinct lists remembered (the models calling one pod ask a handful of lists, each request anew). */
const MEMO_SLOTS = 8;

/**
 * The last few feature lists resolved, by their names: a request naming the
 * same features as a recent one gets the same refs array, without a map
 * lookup per name, and the same identity, which answer writers key their
 * prepared bytes by (native-answer.ts). Names compare by content; the slots
 * are replaced round robin. The arrays returned are shared: read-only, as
 * every refs array is (a feature service's too).
 */
class RefsMemo {
  private readonly names: (readonly string[])[] = [];
  private readonly refs: (readonly FeatureRef[])[] = [];
  private next = 0;

  find(features: readonly unknown[]): readonly FeatureRef[] | undefined {
    const n = features.length;
    for (let s = 0; s < this.names.length; s++) {
      const names = this.names[s]!;
      if (names.length !== n) continue;
      let i = 0;
      while (i < n && features[i] === names[i]) i++;
      if (i === n) return this.refs[s];
    }
    return undefined;
  }

  remember(features: readonly string[], refs: readonly FeatureRef[]): void {
    if (features.length > MEMO_MAX_NAMES) return;
    const s = this.next;
    this.next = (s + 1) % MEMO_SLOTS;
    this.names[s] = features.slice();
    this.refs[s] = refs;
  }
}
