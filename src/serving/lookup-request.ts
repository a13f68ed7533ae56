import { invalid } from "../errors/index.ts";
import { describeValue, type Registry } from "../registry/index.ts";
import { type EntityInput, parseEntities } from "./entity-input.ts";
import type { LookupQuery } from "./lookup-service.ts";
import { resolveFeatures } from "./resolve-features.ts";

/**
 * How one API spells a lookup request: its field names, which are also the
 * paths in its error messages, and its defaults. Every edge hands the use
 * case a plain object (parsed JSON or MessagePack, or a decoded protobuf
 * message brought to the same shape) plus its dialect.
 */
export interface LookupDialect {
  readonly features: string;
  readonly featureService: string;
  readonly entities: string;
  /** The field that switches default-filling; undefined when the API never fills (Feast answers null). */
  readonly fillDefaults: string | undefined;
  readonly fullFeatureNames: string;
  /**
   * Optional flags must be booleans (an error naming the field otherwise).
   * When false, only `true` switches a flag on, as Feast's server reads it.
   */
  readonly strictFlags: boolean;
}

/** Quiver's own API (HTTP /v1/lookup and quiver.v1 over gRPC). */
export const QUIVER_LOOKUP: LookupDialect = {
  features: "features",
  featureService: "featureService",
  entities: "entities",
  fillDefaults: "fillDefaults",
  fullFeatureNames: "fullFeatureNames",
  strictFlags: true,
};

/** Feast's feature server (HTTP /get-online-features and feast.serving over gRPC). */
export const FEAST_LOOKUP: LookupDialect = {
  features: "features",
  featureService: "feature_service",
  entities: "entities",
  fillDefaults: undefined,
  fullFeatureNames: "full_feature_names",
  strictFlags: false,
};

/** A validated lookup plus how to name its columns. */
export interface PlannedLookup {
  readonly query: LookupQuery;
  readonly entities: EntityInput;
  readonly fullFeatureNames: boolean;
}

/**
 * Request → query: resolves feature refs or the service, parses entity rows
 * (row or columnar form) within the row limit and reads the flags. Throws a
 * QuiverError naming the offending field; touches no storage.
 */
export function planLookup(registry: Registry, body: Readonly<Record<string, unknown>>, dialect: LookupDialect, maxRows: number): PlannedLookup {
  const refs = resolveFeatures(registry, body[dialect.features], body[dialect.featureService], dialect);
  const rawEntities = body[dialect.entities];
  if (rawEntities === undefined) throw invalid("invalid_request", dialect.entities, "is required");
  const entities = parseEntities(rawEntities, dialect.entities, maxRows);
  const fillDefaults = dialect.fillDefaults === undefined ? false : flag(body, dialect.fillDefaults, true, dialect.strictFlags);
  const fullFeatureNames = flag(body, dialect.fullFeatureNames, false, dialect.strictFlags);
  return { query: { refs, entities, fillDefaults }, entities, fullFeatureNames };
}

function flag(body: Readonly<Record<string, unknown>>, field: string, dflt: boolean, strict: boolean): boolean {
  const v = body[field];
  if (v === undefined) return dflt;
  if (!strict) return v === true;
  if (typeof v !== "boolean") throw invalid("invalid_request", field, `expected true or false, got ${describeValue(v)}`);
  return v;
}
