import { type Static, Type as T } from "@sinclair/typebox";

/**
 * The shape of a sources file (YAML or JSON): which streams feed which feature
 * views and how each payload maps onto a view. Structure is checked with this
 * schema; meaning (views, features, types) by compile-sources.ts.
 */
const Name = T.String({ pattern: "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$" });
/** A dotted path into the payload: `amount`, `customer.id`, `items.0.price`. */
const FieldPath = T.String({ minLength: 1, maxLength: 512 });

const FieldRule = T.Union([
  FieldPath,
  T.Object(
    {
      path: FieldPath,
      /** Multiplies numeric values (cents → units: 0.01). */
      scale: T.Optional(T.Number()),
    },
    { additionalProperties: false },
  ),
  T.Object({ value: T.Unknown() }, { additionalProperties: false }),
]);

const EventTimeDef = T.Object(
  {
    path: FieldPath,
    format: T.Union([T.Literal("epoch_s"), T.Literal("epoch_ms"), T.Literal("epoch_us"), T.Literal("rfc3339")]),
  },
  { additionalProperties: false },
);

const MappingDef = T.Object(
  {
    featureView: Name,
    /** Join key name → payload path. */
    keys: T.Record(T.String(), FieldPath),
    /** Feature name → payload path, `{ path, scale }` or `{ value }` (a constant). */
    features: T.Record(T.String(), FieldRule),
    eventTime: EventTimeDef,
    /** A field whose value identifies an event; repeats within the dedup window are skipped. */
    idempotencyKey: T.Optional(FieldPath),
    /** Only events whose field equals the value feed this mapping. */
    filter: T.Optional(T.Object({ path: FieldPath, equals: T.Union([T.String(), T.Number(), T.Boolean()]) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

const RedisDef = T.Object(
  {
    url: T.String({ minLength: 1 }),
    stream: T.String({ minLength: 1 }),
    group: T.String({ minLength: 1 }),
    /** Hash field of each stream entry that holds the payload. */
    field: T.Optional(T.String({ minLength: 1 })),
    /** Entries pending longer than this on a consumer are taken over (XAUTOCLAIM). */
    claimIdle: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
    /** Where dead letters go; default `<stream>:dead`. */
    deadLetterStream: T.Optional(T.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

const NatsDef = T.Object(
  {
    servers: T.String({ minLength: 1 }),
    stream: Name,
    consumer: Name,
    subject: T.String({ minLength: 1 }),
    /** How long a delivered message may stay unacknowledged before redelivery. */
    ackWait: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
    /**
     * The durable's max_ack_pending: messages delivered and not yet acknowledged, across every pod reading through
     * it (default 4 × batchSize). Each pod holds its batch and pulls ahead; past about this many, more pods sit idle.
     */
    maxAckPending: T.Optional(T.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** Dead letters go to this JetStream stream (subject `<stream>.<source>`); default `<stream>_DEAD`. */
    deadLetterStream: T.Optional(Name),
  },
  { additionalProperties: false },
);

const SourceDef = T.Object(
  {
    name: Name,
    engine: T.Union([T.Literal("redis"), T.Literal("nats")]),
    redis: T.Optional(RedisDef),
    nats: T.Optional(NatsDef),
    format: T.Optional(T.Union([T.Literal("json"), T.Literal("msgpack")])),
    /** Most events per store round trip. */
    batchSize: T.Optional(T.Integer({ minimum: 1, maximum: 10_000 })),
    /**
     * Largest event accepted, in bytes (default 1 MiB, NATS's default max_payload; 1 KiB to 64 MiB): a Redis entry
     * (all its fields, names and values) or a NATS message's payload over it is dead-lettered `too_large` with its
     * first 4 KiB (a Redis event within the bound, its entry over it for other fields: the event whole), never mapped
     * or written.
     */
    maxEventBytes: T.Optional(T.Integer()),
    /** Failed handlings (not a retryable store outage) before a message is dead-lettered with its last error. */
    maxDeliver: T.Optional(T.Integer({ minimum: 1, maximum: 1000 })),
    /**
     * How long after it was published a message delivered more than `maxDeliver` times may still be retried
     * (default 6 h): past it, it is dead-lettered (`delivery_limit`) whatever this process counted (its counts are
     * lost on a restart or a takeover, and a message that crashes or hangs the process never gets counted).
     */
    retryFor: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
    /**
     * The namespace of this source's idempotency keys (default: the source's name). Sources that carry the same
     * events with the same ids (one upstream published twice, a migration between engines) give the same scope to
     * drop each other's copies; sources with their own id spaces keep their own.
     */
    dedupScope: T.Optional(Name),
    /** How long an idempotency key is remembered. */
    dedupWindow: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
    /** Estimated heap bytes of idempotency keys held per view (default 128 MiB); past half of it a generation turns over early. */
    dedupMaxBytes: T.Optional(T.Integer({ minimum: 1024, maximum: 2 ** 40 })),
    /**
     * How many dead letters the source's dead-letter stream keeps, and for how long (defaults 100,000 letters and
     * 7 days): past either, the oldest go (Redis trims on each add, approximately; JetStream discards them itself).
     */
    deadLetters: T.Optional(
      T.Object(
        {
          maxLetters: T.Optional(T.Integer({ minimum: 1, maximum: 1_000_000_000 })),
          maxAge: T.Optional(T.Union([T.Number({ minimum: 0 }), T.String()])),
        },
        { additionalProperties: false },
      ),
    ),
    mappings: T.Array(MappingDef, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const SourcesDefSchema = T.Object({ sources: T.Array(SourceDef) }, { additionalProperties: false });

export type SourcesDef = Static<typeof SourcesDefSchema>;
export type SourceDef = Static<typeof SourceDef>;
export type MappingDef = Static<typeof MappingDef>;
export type FieldRuleDef = Static<typeof FieldRule>;
