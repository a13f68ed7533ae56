import { invalid } from "../../errors/index.ts";
import { type CompiledView, DEFAULT_TIMESTAMP_FIELD, type FeatureRef, PUSH_TIME_COLUMNS, type Registry } from "../../registry/index.ts";
import { declaredSource, type FeatureServing, FEAST_LOOKUP, type LookupDialect, MessageRow, type PlannedLookup, type PushDialect, type RawRows, unavailableCount } from "../../serving/index.ts";
import { STALE_HEADER, UNAVAILABLE_HEADER } from "../answer-headers.ts";
import type { CallContext } from "./call.ts";
import { FeastResponseEncoder, type KeyVector, type ViewVersion } from "./encode-feast.ts";
import { FeastRowsEncoder } from "./encode-feast-rows.ts";
import { type FeastValue, plainOfFeastValue, plainOfText, type TextColumn } from "./values.ts";

/** Decoded feast.serving.GetOnlineFeaturesRequest (protobufjs message, field names as in the .proto). */
export interface FeastLookupRequest {
  readonly kind?: "feature_service" | "features";
  readonly feature_service: string;
  readonly features: { readonly val: readonly string[] } | null;
  readonly entities: Readonly<Record<string, { readonly val: readonly FeastValue[] }>>;
  readonly full_feature_names: boolean;
  readonly include_feature_view_version_metadata: boolean;
}

/** Decoded PushRequest / WriteToOnlineStoreRequest of Feast's Python gRPC server. */
export interface FeastWriteRequest {
  readonly features: Readonly<Record<string, string>>;
  readonly typed_features: Readonly<Record<string, FeastValue>>;
  readonly stream_feature_view?: string;
  readonly feature_view_name?: string;
  readonly to?: string;
}

/** Feast's GetOnlineFeatures over gRPC: the same fields as its HTTP body; key vectors echo the request's Values as sent (KeyVector). */
const GRPC_FEAST_LOOKUP: LookupDialect = { ...FEAST_LOOKUP, typedEcho: false };

/** Feast's gRPC Push: one row per call, `features` holds it. */
const GRPC_FEAST_PUSH: PushDialect = { view: "stream_feature_view", data: "features", form: "message", pushSources: true, declaredSources: true, to: "to" };
const GRPC_FEAST_WRITE: PushDialect = { view: "feature_view_name", data: "features", form: "message", pushSources: true, declaredSources: false, to: undefined };

/** What a lookup's answer written from stored rows needs once keys a cache lacked were read (lookupRest). */
interface LateAnswer {
  readonly keys: readonly KeyVector[];
  readonly names: readonly string[];
  readonly versions: readonly ViewVersion[] | undefined;
}

/** The version GetFeastServingInfo reports. */
export const SERVING_VERSION = "quiver-0.1.0";

/**
 * Handlers of feast.serving.ServingService and Feast's Python GrpcFeatureServer.
 * Each turns the decoded message into the plain shape the serving layer reads
 * (entity Values to JS values, text columns parsed by registry type) and
 * writes the answer straight from the stored rows when the store hands them
 * over as bytes (FeastRowsEncoder), else from the LookupResult.
 */
export class FeastGrpcService {
  private readonly encoder: FeastResponseEncoder;
  private readonly rowsEncoder: FeastRowsEncoder;
  /** The request being answered from stored rows: set just before lookupRaw, which runs synchronously. */
  private rawKeys: readonly KeyVector[] = [];
  private rawNames: readonly string[] = [];
  private rawVersions: readonly ViewVersion[] | undefined;
  private readonly fromRows = (rows: RawRows, _plan: PlannedLookup): Uint8Array | undefined => this.rowsEncoder.encode(rows, this.rawKeys, this.rawNames, this.rawVersions);
  /** The same, once keys a cache lacked were read (lookupRest): a copy, as the encoder's buffer is reused before the call sends it. */
  private readonly lateRows = (rows: RawRows, a: LateAnswer): Uint8Array | undefined => this.rowsEncoder.encode(rows, a.keys, a.names, a.versions)?.slice();

  constructor(
    private readonly serving: FeatureServing,
    valueType: import("protobufjs").Type,
  ) {
    this.encoder = new FeastResponseEncoder(valueType);
    this.rowsEncoder = new FeastRowsEncoder(valueType);
  }

  info(): { version: string } {
    return { version: SERVING_VERSION };
  }

  getOnlineFeatures(req: FeastLookupRequest, ctx: CallContext): Uint8Array | Promise<Uint8Array> {
    const keys: KeyVector[] = [];
    // No prototype: a join key named like one of Object's properties is a column like any other.
    const columns: Record<string, unknown[]> = Object.create(null);
    for (const name of Object.keys(req.entities)) {
      const values = req.entities[name]?.val ?? [];
      keys.push({ name, values });
      const plain = new Array<unknown>(values.length);
      for (let i = 0; i < values.length; i++) {
        const path = `entities.${name}[${i}]`;
        plain[i] = plainOfFeastValue(values[i], path);
        // Said "missing join key" of a key that was sent.
        if (plain[i] === undefined) throw invalid("invalid_entity", path, "no value set (a Value with none of its fields)");
      }
      columns[name] = plain;
    }
    const body: Record<string, unknown> = { entities: columns, full_feature_names: req.full_feature_names };
    if (req.kind === "feature_service") body.feature_service = req.feature_service;
    else if (req.kind === "features") body.features = req.features?.val ?? [];
    const plan = this.serving.planLookup(body, GRPC_FEAST_LOOKUP);
    const names = plan.query.refs.map((r) => (plan.fullFeatureNames ? r.feature.fullName : r.feature.name));
    const versions = req.include_feature_view_version_metadata ? viewVersionsOf(plan.query.refs) : undefined;
    // The embedded store hands rows over as bytes: the answer is written from them, no value objects in between.
    this.rawKeys = keys;
    this.rawNames = names;
    this.rawVersions = versions;
    let stored: Uint8Array | undefined;
    try {
      stored = this.serving.lookupRaw(plan, this.fromRows);
    } finally {
      // The request's key Values are not kept past the call.
      this.rawKeys = this.rawNames = [];
      this.rawVersions = undefined;
    }
    if (stored !== undefined) return stored;
    const answer = (result: Awaited<ReturnType<FeatureServing["lookup"]>>) => {
      const missing = unavailableCount(result.statuses);
      if (missing > 0) ctx.header(UNAVAILABLE_HEADER, String(missing));
      if (result.degraded.length > 0) ctx.degraded(result.degraded);
      if (result.stale !== undefined) ctx.header(STALE_HEADER, "true");
      return this.encoder.encode(result, keys, names, versions);
    };
    return this.serving.lookupRest(plan, { deadline: ctx.budget }, this.lateRows, answer, { keys, names, versions });
  }

  async push(req: FeastWriteRequest, ctx: CallContext): Promise<{ status: boolean }> {
    const name = req.stream_feature_view ?? "";
    const registry = this.serving.currentRegistry;
    // A declared push source first (its views read the row, its timestampField is the event time), as planPush resolves it.
    const source = declaredSource(registry, name);
    const row = source === undefined ? this.rowOf(req, legacyViews(registry, name), DEFAULT_TIMESTAMP_FIELD) : this.rowOf(req, source.views, source.timestampField);
    await this.serving.push({ stream_feature_view: name, features: row, to: req.to === "" ? undefined : req.to }, GRPC_FEAST_PUSH, { deadline: ctx.deadline });
    return { status: true };
  }

  async writeToOnlineStore(req: FeastWriteRequest, ctx: CallContext): Promise<{ status: boolean }> {
    const name = req.feature_view_name ?? "";
    const row = this.rowOf(req, legacyViews(this.serving.currentRegistry, name), DEFAULT_TIMESTAMP_FIELD);
    await this.serving.push({ feature_view_name: name, features: row }, GRPC_FEAST_WRITE, { deadline: ctx.deadline });
    return { status: true };
  }

  /**
   * The message as one row, each column named where the client put it: text columns parsed by the type `views` give
   * them (the registry makes a push source's views agree on each column's type), typed columns as they are (typed wins).
   */
  private rowOf(req: FeastWriteRequest, views: readonly CompiledView[], timeField: string): MessageRow {
    const values: Record<string, unknown> = Object.create(null);
    const paths: Record<string, string> = Object.create(null);
    for (const name of Object.keys(req.features)) {
      paths[name] = `features.${name}`;
      values[name] = plainOfText(req.features[name]!, textColumn(views, timeField, name), paths[name]);
    }
    for (const name of Object.keys(req.typed_features)) {
      paths[name] = `typed_features.${name}`;
      // A Value with no field set is a null, as Feast writes None (type_map: ProtoValue()) and reads it back
      // (feast_value_type_to_python_type: None), and as GetOnlineFeatures answers a missing value; it was refused.
      const plain = plainOfFeastValue(req.typed_features[name], paths[name]) ?? null;
      values[name] = name === timeField && typeof plain === "number" && req.typed_features[name]?.val === "unix_timestamp_val" ? plain * 1000 : plain;
    }
    return new MessageRow(values, paths);
  }
}

/** The view a name addresses by Quiver's own rules (its name, or `<view>_push_source`), as a list; none when unknown. */
function legacyViews(registry: Registry, name: string): readonly CompiledView[] {
  const view = registry.views.get(name) ?? registry.views.get(name.replace(/_push_source$/, ""));
  return view === undefined ? [] : [view];
}

function textColumn(views: readonly CompiledView[], timeField: string, column: string): TextColumn {
  if (column === timeField || PUSH_TIME_COLUMNS.has(column)) return "time";
  for (const view of views) {
    const key = view.joinKeys.find((k) => k.name === column);
    if (key) return key.type === "int64" ? "int64-key" : "string-key";
    const feature = view.featureIndex.get(column);
    if (feature) return feature.type.kind;
  }
  return undefined;
}

/** The distinct views a lookup reads, in first-use order, with their registry versions. */
function viewVersionsOf(refs: readonly FeatureRef[]): ViewVersion[] {
  const out: ViewVersion[] = [];
  for (const r of refs) if (!out.some((v) => v.name === r.view.name)) out.push({ name: r.view.name, version: r.view.version });
  return out;
}
