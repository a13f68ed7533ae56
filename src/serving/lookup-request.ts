import { invalid } from "../errors/index.ts";
import { int64Of } from "../kv/int64.ts";
import { describeValue, type Registry } from "../registry/index.ts";
import { type ColumnEntities, type EntityInput, parseEntities, type RowEntities } from "./entity-input.ts";
import type { LookupQuery } from "./lookup-service.ts";
import { checkColumnNames, checkEchoedKeyNames, featureListFacts } from "./feature-list-facts.ts";
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
  /**
   * Do an empty feature service name, and an empty feature list beside a service, mean "not given"? Feast's server
   * reads its request so (pydantic defaults `features` to [], then `if request.feature_service:`): clients sending
   * every field were answered there and refused here.
   */
  readonly emptyMeansAbsent: boolean;
  /**
   * Are echoed entity values given their join key's type first, as Feast's HTTP server converts each entity column
   * (python_values_to_proto_values, `int(x)` for an int64 key, `str(x)` for a string key) before echoing it? An int64
   * key sent as `"1001"` then comes back as 1001 (it came back as the string), and a string key sent as the integer 7
   * is the key "7" (it was a 400). Off for gRPC: Feast's Go server takes and echoes the request's Values as sent.
   */
  readonly typedEcho: boolean;
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
  emptyMeansAbsent: false,
  typedEcho: false,
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
  emptyMeansAbsent: true,
  typedEcho: true,
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
  let features = body[dialect.features];
  let service = body[dialect.featureService];
  if (dialect.emptyMeansAbsent) {
    if (service === "") service = undefined;
    if (service !== undefined && service !== null && Array.isArray(features) && features.length === 0) features = undefined;
  }
  const refs = resolveFeatures(registry, features, service, dialect);
  const rawEntities = body[dialect.entities];
  if (rawEntities === undefined) throw invalid("invalid_request", dialect.entities, "is required");
  const entities = parseEntities(rawEntities, dialect.entities, limits.maxRows);
  const facts = featureListFacts(refs);
  const values = entities.rowCount * facts.valuesPerRow;
  if (values > limits.maxValues) {
    const per = facts.valuesPerRow === refs.length ? `${refs.length} features` : `${refs.length} features (${facts.valuesPerRow} values, an embedding counting its dimensions)`;
    throw invalid("too_many_values", dialect.entities, `${entities.rowCount} entity rows × ${per} is ${values} values; the limit is ${limits.maxValues} per lookup: split it`);
  }
  if (dialect.echoesEntities) {
    checkEntityColumns(registry, entities, dialect.entities);
    checkEchoable(registry, entities, dialect.typedEcho);
  }
  const fillDefaults = dialect.fillDefaults === undefined ? false : flag(body, dialect.fillDefaults, true, dialect.strictFlags);
  const fullFeatureNames = flag(body, dialect.fullFeatureNames, false, dialect.strictFlags);
  const listField = features === undefined || features === null ? dialect.featureService : dialect.features;
  if (facts.repeatedName >= 0 || facts.repeatedRef >= 0) checkColumnNames(refs, facts, fullFeatureNames, listField, dialect.fullFeatureNames);
  if (dialect.echoesEntities) checkEchoedKeyNames(refs, entities.keyNames, fullFeatureNames, listField);
  return { query: { refs, entities, fillDefaults }, entities, fullFeatureNames };
}

/**
 * Refuses an entity column that is no join key the registry knows, as older
 * Feast releases did (EntityNotFoundException): a misspelt key was echoed back
 * as a column of its own (200,000 such columns in one request, all echoed)
 * beside the real key reported missing. Feast's current server skips such a
 * column instead (src/api/http/README.md says so).
 */
function checkEntityColumns(registry: Registry, entities: EntityInput, field: string): void {
  const keys = entities.keyNames;
  for (let k = 0; k < keys.length; k++) {
    if (!registry.joinKeys.has(keys[k]!)) throw invalid("invalid_entity", `${field}.${keys[k]}`, "is not a join key of any entity in the registry");
  }
}

/**
 * Entity columns an answer echoes hold what a Feast Value can: a scalar or a
 * list of scalars. Anything else (an object, nested lists: JSON allows them
 * thousands of levels deep) is a 400 naming its path, not an answer the
 * encoder cannot write. With `typed` (every column is a join key by now:
 * checkEntityColumns), an int64 key's decimal text is replaced by the integer
 * it spells, the same key, and a string key's integer by its decimal text, so
 * the answer echoes them, and the key is read, as Feast's are. Only integers
 * become text: Python's str() of a float or a bool ("1.5", "True") is no id a
 * client means, and stays a 400 — a whole one too (`1.0`, `1e2`: JSON.parse
 * gives 1, so the body parse notes the literal, writtenAsFloat), which was
 * read as the key "1", another entity's row.
 */
function checkEchoable(registry: Registry, entities: RowEntities | ColumnEntities, typed: boolean): void {
  const keys = entities.keyNames;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    const type = typed ? registry.joinKeys.get(key)?.type : undefined;
    for (let r = 0; r < entities.rowCount; r++) {
      const v = entities.value(r, key);
      if (typeof v === "string") {
        if (type === "int64") {
          // Text that is no int64 stays as sent, for key building to refuse naming it.
          const n = int64Of(v);
          if (n !== undefined) entities.replace(r, key, n);
        }
        continue;
      }
      if (type === "string" && (Number.isSafeInteger(v) || typeof v === "bigint")) {
        // JSON.parse gives 1.0 as 1: such a literal is no integer (Feast's str() reads the key "1.0"), and was read as "1".
        if (typeof v === "number" && entities.writtenAsFloat(r, key)) {
          throw invalid("invalid_entity", entities.pathOf(r, key), `expected string (or an integer, read as its digits), got a number written as a float, ${Object.is(v, -0) ? "-0" : v}.0`);
        }
        entities.replace(r, key, String(v));
        continue;
      }
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

/** What Feast's server (pydantic's lax booleans) reads as true or false; anything else is a 422 there, a 400 here. */
const LAX_BOOLEANS: ReadonlyMap<unknown, boolean> = new Map<unknown, boolean>([
  ...["true", "t", "yes", "y", "on", "1"].map((s): [string, boolean] => [s, true]),
  ...["false", "f", "no", "n", "off", "0"].map((s): [string, boolean] => [s, false]),
  [1, true],
  [0, false],
]);

function flag(body: Readonly<Record<string, unknown>>, field: string, dflt: boolean, strict: boolean): boolean {
  const v = body[field];
  if (v === undefined) return dflt;
  if (typeof v === "boolean") return v;
  if (!strict) {
    if (v === null) return dflt;
    const lax = LAX_BOOLEANS.get(typeof v === "string" ? v.toLowerCase() : v);
    if (lax !== undefined) return lax;
  }
  throw invalid("invalid_request", field, `expected true or false, got ${describeValue(v)}`);
}
