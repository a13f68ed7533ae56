import { invalid, unknownName } from "../errors/index.ts";
import { describeValue, type FeatureRef, type Registry, unknownRefMessage } from "../registry/index.ts";

/** Most features one request may name; protects the server from absurd plans. */
export const MAX_FEATURES_PER_REQUEST = 2000;

/**
 * Resolves a request's feature list or feature service to references. Exactly
 * one of the two must be given; every unknown name is an `unknown_name` error naming it.
 */
export function resolveFeatures(
  registry: Registry,
  features: unknown,
  service: unknown,
  paths: { features: string; service: string },
): readonly FeatureRef[] {
  if (features !== undefined && service !== undefined) {
    throw invalid("invalid_request", paths.features, `give either ${paths.features} or ${paths.service}, not both`);
  }
  if (service !== undefined) {
    if (typeof service !== "string") throw invalid("invalid_request", paths.service, `expected a feature service name, got ${describeValue(service)}`);
    const refs = registry.services.get(service);
    if (!refs) throw unknownName("unknown_feature_service", paths.service, `unknown feature service "${service}"`);
    return refs;
  }
  if (features === undefined) throw invalid("invalid_request", paths.features, `is required (or ${paths.service})`);
  if (!Array.isArray(features)) throw invalid("invalid_request", paths.features, `expected a list of "<feature_view>:<feature>", got ${describeValue(features)}`);
  if (features.length === 0) throw invalid("invalid_request", paths.features, "must name at least one feature");
  if (features.length > MAX_FEATURES_PER_REQUEST) throw invalid("invalid_request", paths.features, `${features.length} features; the limit is ${MAX_FEATURES_PER_REQUEST}`);
  const out = new Array<FeatureRef>(features.length);
  for (let i = 0; i < features.length; i++) {
    const name = features[i];
    const ref = typeof name === "string" ? registry.refs.get(name) : undefined;
    if (ref === undefined) {
      const message = typeof name === "string" ? unknownRefMessage(name, registry.views) : `expected "<feature_view>:<feature>", got ${describeValue(name)}`;
      const path = `${paths.features}[${i}]`;
      // A malformed reference is bad input; a well-formed one naming nothing is an unknown name (gRPC NOT_FOUND).
      if (typeof name !== "string" || name.indexOf(":") <= 0) throw invalid("unknown_feature", path, message);
      throw unknownName(message.startsWith("unknown feature view") ? "unknown_feature_view" : "unknown_feature", path, message);
    }
    out[i] = ref;
  }
  return out;
}
