import { type Static, Type as T } from "@sinclair/typebox";

/**
 * The shape of a definitions file (YAML or JSON). Structure is checked with this
 * schema; meaning (references, types of defaults) by compile-registry.ts.
 */
const Name = T.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$" });

const JoinKeyDef = T.Object(
  { name: Name, type: T.Union([T.Literal("int64"), T.Literal("string")]), description: T.Optional(T.String()) },
  { additionalProperties: false },
);

const EntityDef = T.Object(
  { name: Name, description: T.Optional(T.String()), joinKeys: T.Array(JoinKeyDef, { minItems: 1, maxItems: 8 }) },
  { additionalProperties: false },
);

const FeatureDef = T.Object(
  {
    name: Name,
    type: T.String(),
    default: T.Optional(T.Unknown()),
    description: T.Optional(T.String()),
    tags: T.Optional(T.Record(T.String(), T.String())),
  },
  { additionalProperties: false },
);

const StatisticsDef = T.Record(
  T.String(),
  T.Object({ median: T.Optional(T.Number()), mostCommon: T.Optional(T.Unknown()) }, { additionalProperties: false }),
);

/**
 * A vector index over one `embedding(dim)` feature (claim matching, src/vector/).
 * Structure here; meaning (the feature exists and is an embedding) in compile-registry.ts.
 */
const VectorIndexDef = T.Object(
  {
    feature: Name,
    metric: T.Optional(T.Union([T.Literal("cosine"), T.Literal("l2"), T.Literal("ip")])),
    algorithm: T.Optional(T.Union([T.Literal("hnsw"), T.Literal("brute-force")])),
    M: T.Optional(T.Integer({ minimum: 2, maximum: 128 })),
    efConstruction: T.Optional(T.Integer({ minimum: 8, maximum: 4096 })),
    efSearch: T.Optional(T.Integer({ minimum: 1, maximum: 4096 })),
    maxElements: T.Optional(T.Integer({ minimum: 1, maximum: 100_000_000 })),
    embedder: T.Optional(T.Union([T.Literal("hashed-ngrams"), T.Literal("onnx")])),
  },
  { additionalProperties: false },
);

const FeatureViewDef = T.Object(
  {
    name: Name,
    entities: T.Array(Name, { minItems: 1 }),
    features: T.Array(FeatureDef, { minItems: 1, maxItems: 4096 }),
    maxAge: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
    // At most 2^31 - 1: 9007199254740993 was kept as ...992 (so a bump to ...993 kept the same rows), 1e300 keyed rows "v@1e+300/".
    version: T.Optional(T.Integer({ minimum: 1, maximum: 2_147_483_647 })),
    description: T.Optional(T.String()),
    tags: T.Optional(T.Record(T.String(), T.String())),
    owner: T.Optional(T.String()),
    statistics: T.Optional(StatisticsDef),
    index: T.Optional(VectorIndexDef),
  },
  { additionalProperties: false },
);

const FeatureServiceDef = T.Object(
  { name: Name, description: T.Optional(T.String()), features: T.Array(T.String(), { minItems: 1 }) },
  { additionalProperties: false },
);

/**
 * Feast's PushSource: a name that Feast's `/push` (and GrpcFeatureServer.Push)
 * addresses, feeding every listed view from one frame whose event time is the
 * column `timestampField` (Feast: the push source's batch source's
 * `timestamp_field`). Meaning (views exist, columns agree) in compile-registry.ts.
 */
const PushSourceDef = T.Object(
  {
    name: Name,
    description: T.Optional(T.String()),
    featureViews: T.Array(Name, { minItems: 1 }),
    timestampField: T.Optional(Name),
  },
  { additionalProperties: false },
);

export const RegistryDefSchema = T.Object(
  {
    project: T.Optional(T.String()),
    entities: T.Array(EntityDef),
    featureViews: T.Array(FeatureViewDef),
    featureServices: T.Optional(T.Array(FeatureServiceDef)),
    pushSources: T.Optional(T.Array(PushSourceDef)),
  },
  { additionalProperties: false },
);

export type RegistryDef = Static<typeof RegistryDefSchema>;
export type EntityDef = Static<typeof EntityDef>;
export type FeatureViewDef = Static<typeof FeatureViewDef>;
export type FeatureDef = Static<typeof FeatureDef>;
export type VectorIndexDef = Static<typeof VectorIndexDef>;
export type PushSourceDef = Static<typeof PushSourceDef>;
