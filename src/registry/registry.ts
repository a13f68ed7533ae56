import type { FeatureValue } from "../kv/kv-node.ts";
import type { JoinKeyType } from "../kv/keys.ts";
import type { RegistryDef } from "./definitions.ts";
import type { ValueCheck, ValueType } from "./value-types.ts";

/**
 * The registry as the serving path uses it: every per-view thing a request
 * needs (feature indexes, defaults, checkers, key prefixes) computed once at
 * load, so a lookup does map gets and array indexing, not string parsing.
 */

export interface JoinKey {
  readonly name: string;
  readonly type: JoinKeyType;
  /** The start of its storage-key part as ASCII bytes, `<name>=i` or `<name>=s` (see kv/keys.ts): raw reads build keys from it. */
  readonly partHead: Uint8Array;
}

export interface CompiledFeature {
  readonly name: string;
  readonly index: number;
  readonly type: ValueType;
  readonly typeName: string;
  readonly defaultValue: FeatureValue;
  readonly check: ValueCheck;
  /**
   * A value `check` let through in the form rows store: an int64 given as
   * decimal text or a bigint becomes a safe number or a bigint past 2^53
   * (src/kv/int64.ts), a float64 given as a bigint (an integer literal past
   * 2^53) its number; every other value is itself.
   */
  readonly canonical: (v: unknown) => FeatureValue;
  /**
   * Holds float64s (float64, float64[], embedding: value-types.ts, holdsFloats): answers write its
   * numbers as floats (MessagePack float 64, JSON `5.0`), as stored rows cannot say so for a whole one.
   */
  readonly floats: boolean;
  /** `view:feature` */
  readonly ref: string;
  /** `view__feature`, Feast's full feature name. */
  readonly fullName: string;
}

export interface CompiledView {
  readonly name: string;
  readonly version: number;
  /** Storage key prefix `<view>@<version>/`. */
  readonly keyPrefix: string;
  /** The same prefix as ASCII bytes (names are ASCII identifiers). */
  readonly keyPrefixBytes: Uint8Array;
  /** Join keys of all the view's entities, in declaration order, deduplicated. */
  readonly joinKeys: readonly JoinKey[];
  /** Stable identity of the join-key set; views sharing it share entity keys. */
  readonly joinKeySignature: string;
  readonly features: readonly CompiledFeature[];
  readonly featureIndex: ReadonlyMap<string, CompiledFeature>;
  readonly defaults: readonly FeatureValue[];
  /** 0 = values never go stale. */
  readonly maxAgeMs: number;
  /** The view's vector index, when it declares one (`index:`). */
  readonly index: VectorIndexSpec | undefined;
}

export type VectorMetric = "cosine" | "l2" | "ip";

/** A view's `index:` with every default resolved (see src/vector/). */
export interface VectorIndexSpec {
  /** The indexed `embedding(dim)` feature. */
  readonly feature: CompiledFeature;
  readonly dim: number;
  readonly metric: VectorMetric;
  readonly algorithm: "hnsw" | "brute-force";
  readonly M: number;
  readonly efConstruction: number;
  readonly efSearch: number;
  /** Initial capacity; the index grows beyond it. */
  readonly maxElements: number;
  /** Turns `text` queries into vectors; undefined = text queries are refused. */
  readonly embedder: "hashed-ngrams" | "onnx" | undefined;
}

/** A resolved `view:feature` reference. */
/**
 * Columns a pushed row may carry besides its view's join keys and features:
 * its event time and Feast's created time (accepted, not stored). The push
 * path reads them, the registry refuses features so named, the gRPC edge
 * parses them as times.
 */
export const PUSH_TIME_COLUMNS: ReadonlySet<string> = new Set(["event_timestamp", "created", "created_timestamp"]);

/** The event-time column of a push source that names none (Feast's usual `timestamp_field`). */
export const DEFAULT_TIMESTAMP_FIELD = "event_timestamp";

/** A declared push source (`pushSources:`): one pushed frame fans out to every view it lists. */
export interface CompiledPushSource {
  readonly name: string;
  /** In declaration order; at least one, each once. */
  readonly views: readonly CompiledView[];
  /** The frame's event-time column (`timestampField`, default `event_timestamp`). */
  readonly timestampField: string;
}

export interface FeatureRef {
  readonly view: CompiledView;
  readonly feature: CompiledFeature;
}

export interface Registry {
  readonly project: string;
  readonly views: ReadonlyMap<string, CompiledView>;
  /** Every valid `view:feature` string → its resolved reference. */
  readonly refs: ReadonlyMap<string, FeatureRef>;
  readonly services: ReadonlyMap<string, readonly FeatureRef[]>;
  /** Declared push sources by name (Feast's `/push` and GrpcFeatureServer.Push resolve these first). */
  readonly pushSources: ReadonlyMap<string, CompiledPushSource>;
  /** Every join key any entity declares, by name (push and lookup check types with it). */
  readonly joinKeys: ReadonlyMap<string, JoinKey>;
  /** The definitions as loaded, for GET /v1/registry. */
  readonly definition: RegistryDef;
  /** Content hash of the definitions, so ops can tell which registry is live. */
  readonly digest: string;
  readonly loadedAt: number;
}

/**
 * Holds the live registry; reload swaps the reference atomically so each
 * request sees one whole registry from start to end.
 */
export class RegistryHolder {
  constructor(private registry: Registry) {}
  get current(): Registry {
    return this.registry;
  }
  swap(next: Registry): void {
    this.registry = next;
  }
}
