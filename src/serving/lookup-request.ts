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
  /** Does the answer echo every entity column (Feast's does)? Then their values must be ones it can write back. */
  readonly echoesEntities: boolean;
}

/** Quiver's own API (HTTP /v1/lookup and quiver.v1 over gRPC). */
export const QUIVER_LOOKUP: LookupDialect = {
  features: "features",
  featureService: "featureService",
  entities: "entities",
  fillDefaults: "fillDefaults",
  fullFeatureNames: "fullFeatureNames",
  strictFlags: true,
  echoesEntities: false,
};

/** Feast's feature server (HTTP /get-online-features and feast.serving over gRPC). */
export const FEAST_LOOKUP: LookupDialect = {
  features: "features",
  featureService: "feature_service",
  entities: "entities",
  fillDefaults: undefined,
  fullFeatureNames: "full_feature_names",
  strictFlags: false,
  echoesEntities: true,
};

/** A validated lookup plus how to name its columns. */
export interface PlannedLookup {
  readonly query: LookupQuery;
  readonly entities: EntityInput;
  readonly fullFeatureNames: boolean;
}

/** How much one lookup may ask for. */
export interface LookupLimits {
  /** Most entity rows. */
  readonly maxRows: number;
  /** Most values in one answer (rows × features): what bounds its size, whatever the two are alone. */
  readonly maxValues: number;
}

/**
 * Request → query: resolves feature refs or the service, parses entity rows
 * (row or columnar form) within the limits and reads the flags. Throws a
 * QuiverError naming the offending field; touches no storage.
 */
export function planLookup(registry: Registry, body: Readonly<Record<string, unknown>>, dialect: LookupDialect, limits: LookupLimits): PlannedLookup {
  const refs = resolveFeatures(registry, body[dialect.features], body[dialect.featureService], dialect);
  const rawEntities = body[dialect.entities];
  if (rawEntities === undefined) throw invalid("invalid_request", dialect.entities, "is required");
  const entities = parseEntities(rawEntities, dialect.entities, limits.maxRows);
  const values = entities.rowCount * refs.length;
  if (values > limits.maxValues) {
    throw invalid("too_many_values", dialect.entities, `${entities.rowCount} entity rows × ${refs.length} features is ${values} values; the limit is ${limits.maxValues} per lookup: split it`);
  }
  if (dialect.echoesEntities) checkEchoable(entities);
  const fillDefaults = dialect.fillDefaults === undefined ? false : flag(body, dialect.fillDefaults, true, dialect.strictFlags);
  const fullFeatureNames = flag(body, dialect.fullFeatureNames, false, dialect.strictFlags);
  return { query: { refs, entities, fillDefaults }, entities, fullFeatureNames };
}

/**
 * Entity columns an answer echoes hold what a Feast Value can: a scalar or a
 * list of scalars. Anything else (an object, nested lists: JSON allows them
 * thousands of levels deep) is a 400 naming its path, not an answer the
 * encoder cannot write.
 */
function checkEchoable(entities: EntityInput): void {
  const keys = entities.keyNames;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    for (let r = 0; r < entities.rowCount; r++) {
      const v = entities.value(r, key);
      if (v === null || typeof v !== "object" || (Array.isArray(v) && scalarsOnly(v))) continue;
      throw invalid("invalid_entity", entities.pathOf(r, key), `expected a value Feast can echo (a scalar or a list of scalars), got ${describeValue(v)}`);
    }
  }
}

function scalarsOnly(list: readonly unknown[]): boolean {
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (v !== null && typeof v === "object") return false;
  }
  return true;
}

function flag(body: Readonly<Record<string, unknown>>, field: string, dflt: boolean, strict: boolean): boolean {
  const v = body[field];
  if (v === undefined) return dflt;
  if (!strict) return v === true;
  if (typeof v !== "boolean") throw invalid("invalid_request", field, `expected true or false, got ${describeValue(v)}`);
  return v;
}
