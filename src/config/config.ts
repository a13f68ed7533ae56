import { parseDurationMs } from "../registry/durations.ts";
import { MAX_TIMER_MS } from "../runtime/timers.ts";
import { WARMUP_SHAPES, type WarmupShape } from "../serving/warmup-entities.ts";

/** Everything `src/main.ts` can be told, from flags or environment. */
export interface QuiverConfig {
  readonly host: string;
  readonly port: number;
  /** gRPC port; -1 = no gRPC edge. */
  readonly grpcPort: number;
  readonly grpcKeepaliveMs: number;
  readonly grpcRequestWaitMs: number;
  /** 0 = connections live for good. */
  readonly grpcMaxConnectionAgeMs: number;
  readonly grpcMaxConnectionAgeGraceMs: number;
  /** 0 = never. */
  readonly grpcMaxConnectionIdleMs: number;
  /** 0 = never. */
  readonly grpcStreamIdleMs: number;
  readonly registryPath: string;
  readonly dataDir: string;
  readonly durability: "normal" | "full";
  readonly embeddedNodes: number;
  readonly vnodes: number;
  readonly migrateOnStart: "on" | "off";
  readonly migrationCheckpoint: string;
  readonly placementCheckMs: number;
  readonly topologyPath: string;
  readonly readFrom: "primary" | "replica" | "nearest";
  readonly writeAcks: number;
  readonly demoEntities: number;
  readonly maxBodyBytes: number;
  readonly maxRows: number;
  readonly maxLookupValues: number;
  readonly maxFutureSkewMs: number;
  readonly adminToken: string;
  readonly shutdownDelayMs: number;
  readonly sourcesPath: string;
  readonly embedderModel: string;
  readonly vectorSnapshotMs: number;
  readonly vectorCatchUpMs: number;
  readonly cacheL1: "on" | "off" | "auto";
  readonly cacheL1Bytes: number;
  readonly cacheTtlMs: number;
  readonly cacheNegativeTtlMs: number;
  readonly cacheGraceMs: number;
  readonly cacheFeedDownTtlMs: number;
  readonly cacheRefreshGatherMs: number;
  readonly cacheL2: string;
  readonly cacheL2Sentinels: string;
  readonly cacheL2Master: string;
  readonly cacheL2TtlMs: number;
  readonly cacheL2TimeoutMs: number;
  readonly cacheFeed: string;
  readonly cacheFeedSentinels: string;
  readonly cacheFeedMaster: string;
  readonly lookupTimeoutMs: number;
  readonly maxConcurrency: number;
  readonly admissionLimitAllowance: number;
  readonly admissionQueue: number;
  readonly admissionQueueTimeoutMs: number;
  readonly admissionQueueTargetMs: number;
  readonly admissionQueueStandingWaitMs: number;
  readonly admissionQueueStandingWaitMaxMs: number;
  readonly admissionQueueStandingRoom: number;
  readonly overloadDelayMs: number;
  readonly overloadIntervalMs: number;
  readonly overloadTurnMs: number;
  readonly overloadTurnMaxMs: number;
  readonly commonStallMs: number;
  readonly youngGcIntervalMs: number;
  readonly youngGcMinRequests: number;
  readonly youngGcMinHeapMb: number;
  /** Nice value for the runtime's background threads (the JIT's compilers, the allocator's scavenger); -1 leaves them. */
  readonly backgroundNice: number;
  readonly answerBatch: number;
  readonly warmupLookups: number;
  readonly warmupShapes: readonly WarmupShape[];
  readonly answerBatchAfter: number;
  readonly answerHoldMs: number;
  /** Settings given by flag or environment (not defaulted), so a topology file's own values are not shadowed by our defaults. */
  readonly explicit: ReadonlySet<keyof QuiverConfig>;
}

interface Setting {
  readonly key: Exclude<keyof QuiverConfig, "explicit">;
  readonly flag: string;
  readonly env: string;
  readonly default: string;
  readonly help: string;
  readonly parse: (raw: string, where: string) => QuiverConfig[keyof QuiverConfig];
}

/** Decimal digits (a leading minus where `min` is negative): Number("") and Number(" ") are 0, Number("0x1F90") 8080. */
const int = (min: number, max: number) => (raw: string, where: string) => {
  const n = /^-?\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${where}: expected an integer from ${min} to ${max}, got "${raw}"`);
  return n;
};
/** A plain decimal (digits, optionally a fraction: "0.5"), from `min` to `max`. */
const decimal = (min: number, max: number) => (raw: string, where: string) => {
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= min && n <= max)) throw new Error(`${where}: expected a number from ${min} to ${max} (digits, optionally a fraction), got "${raw}"`);
  return n;
};
const text = (raw: string) => raw;
const oneOf =
  <T extends string>(...options: T[]) =>
  (raw: string, where: string): T => {
    if (!(options as string[]).includes(raw)) throw new Error(`${where}: expected one of ${options.join(", ")}, got "${raw}"`);
    return raw as T;
  };
const duration = (raw: string, where: string) => {
  const ms = parseDurationMs(/^\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw);
  if (ms === undefined) throw new Error(`${where}: expected a duration like "90s", "1h" or seconds, got "${raw}"`);
  // A 30d interval ran every 1 ms (placement checks ~800/s per shard, a snapshot per push).
  if (ms > MAX_TIMER_MS) throw new Error(`${where}: at most 24d (timers cannot wait longer), got "${raw}"`);
  return ms;
};

const positiveDuration = (raw: string, where: string) => {
  const ms = duration(raw, where);
  if (ms <= 0) throw new Error(`${where}: must be greater than zero, got "${raw}"`);
  return ms;
};
/** The longest connection age: 22d plus grpc-js's 10% (24.2d) is still within what a timer holds (24.8d). */
const MAX_CONNECTION_AGE_MS = 22 * 86_400_000;
/**
 * A connection age: grpc-js adds up to 10% jitter to it in a timer, which must still hold it (a longer one fired at
 * once). Bounded at the 22d the message names: the bound was the timer's own (ms × 1.1), so "at most 22d" accepted 22.5d.
 */
const connectionAge = (raw: string, where: string) => {
  const ms = duration(raw, where);
  if (ms > MAX_CONNECTION_AGE_MS) throw new Error(`${where}: at most 22d (grpc-js adds up to 10% to it, and timers cannot wait longer), got "${raw}"`);
  return ms;
};
const shapeList = (raw: string, where: string): WarmupShape[] => {
  const out: WarmupShape[] = [];
  for (const part of raw.split(",").map((x) => x.trim())) {
    if (!(WARMUP_SHAPES as readonly string[]).includes(part)) throw new Error(`${where}: expected a comma-separated list of ${WARMUP_SHAPES.join(", ")}, got "${part}"`);
    if (!out.includes(part as WarmupShape)) out.push(part as WarmupShape);
  }
  return out;
};
const HOST_PORT = /^[A-Za-z0-9_.-]+:\d{1,5}$/;
/** A listen address: a host name or IP literal. Empty listened on every interface (Bun.serve's default). */
const host = (raw: string, where: string) => {
  if (!/^[A-Za-z0-9_.:%-]+$/.test(raw)) throw new Error(`${where}: expected a host name or IP address (0.0.0.0 for every IPv4 interface), got "${raw}"`);
  return raw;
};
const addressOrOff = (raw: string, where: string) => {
  if (raw !== "" && raw !== "off" && !HOST_PORT.test(raw)) throw new Error(`${where}: expected host:port or off, got "${raw}"`);
  return raw;
};
const addressList = (raw: string, where: string) => {
  for (const a of raw.split(",").filter((x) => x !== "")) if (!HOST_PORT.test(a)) throw new Error(`${where}: expected host:port, got "${a}"`);
  return raw;
};

/** The settings table; README's configuration section mirrors it (`bun src/main.ts --help` prints it). */
export const SETTINGS: readonly Setting[] = [
  { key: "port", flag: "--port", env: "PORT", default: "6566", help: "HTTP port (6566 is Feast's feature-server port); 0 picks a free one", parse: int(0, 65535) },
  { key: "grpcPort", flag: "--grpc-port", env: "QUIVER_GRPC_PORT", default: "6570", help: "gRPC port (Feast's ServingService, quiver.v1, health, reflection); 0 picks a free one, -1 turns gRPC off (its modules are then not loaded, which shortens every garbage collection)", parse: int(-1, 65535) },
  { key: "grpcKeepaliveMs", flag: "--grpc-keepalive", env: "QUIVER_GRPC_KEEPALIVE", default: "60s", help: "gRPC keepalive ping interval on idle connections (dropped after 20 s without an answer)", parse: duration },
  { key: "grpcRequestWaitMs", flag: "--grpc-request-wait", env: "QUIVER_GRPC_REQUEST_WAIT", default: "10s", help: "How long a unary gRPC call's request (its message and end of stream) may take to arrive after its headers; then the call is ended DEADLINE_EXCEEDED (request_incomplete) and its stream reset (a client that sent headers and nothing more held the call for good). Streams, health and reflection are not bounded", parse: positiveDuration },
  { key: "grpcMaxConnectionAgeMs", flag: "--grpc-max-connection-age", env: "QUIVER_GRPC_MAX_CONNECTION_AGE", default: "30m", help: "A gRPC connection this old (give or take 10%, at random, so connections opened together do not all go together) is told to go away (GOAWAY): its client opens a new one for new calls, so behind an L4 load balancer or a Kubernetes Service, pods added later get their share of long-lived clients; open LookupStreams on it are ended UNAVAILABLE (connection_closing) once their read lookups are answered; 0 = never", parse: connectionAge },
  { key: "grpcMaxConnectionAgeGraceMs", flag: "--grpc-max-connection-age-grace", env: "QUIVER_GRPC_MAX_CONNECTION_AGE_GRACE", default: "2m", help: "How long calls may still run on a gRPC connection told to go away (--grpc-max-connection-age) before it is closed and they are cut (a grpc-js client sees INTERNAL, 'Received RST_STREAM with code 0'); longer than any call's own bound (a lookup's 60 s budget), so only streams the server does not end itself are cut", parse: positiveDuration },
  { key: "grpcMaxConnectionIdleMs", flag: "--grpc-max-connection-idle", env: "QUIVER_GRPC_MAX_CONNECTION_IDLE", default: "0", help: "A gRPC connection without a call this long is closed (GOAWAY; its client reconnects when it next calls); 0 = never (--grpc-max-connection-age bounds every connection already; this one costs every call a listener)", parse: duration },
  { key: "grpcStreamIdleMs", flag: "--grpc-stream-idle", env: "QUIVER_GRPC_STREAM_IDLE", default: "5m", help: "A LookupStream that has sent no lookup and has none running or unsent this long is ended UNAVAILABLE (stream_idle; open it again when there is a lookup to send): an idle stream held its call for good; one that keeps sending is never ended so; 0 = never", parse: duration },
  { key: "host", flag: "--host", env: "QUIVER_HOST", default: "127.0.0.1", help: "Address to listen on (0.0.0.0 in containers)", parse: host },
  { key: "registryPath", flag: "--registry", env: "QUIVER_REGISTRY", default: "src/registry/example-registry.yaml", help: "Feature definitions file (YAML or JSON)", parse: text },
  { key: "dataDir", flag: "--data-dir", env: "QUIVER_DATA_DIR", default: "", help: "Embedded store directory; empty = memory only", parse: text },
  { key: "durability", flag: "--durability", env: "QUIVER_DURABILITY", default: "normal", help: "Embedded store sync: normal (survives kill -9) or full (fsync, survives power loss)", parse: oneOf("normal", "full") },
  { key: "embeddedNodes", flag: "--embedded-nodes", env: "QUIVER_EMBEDDED_NODES", default: "4", help: "In-process nodes on the ring for the embedded store", parse: int(1, 256) },
  { key: "vnodes", flag: "--vnodes", env: "QUIVER_VNODES", default: "160", help: "Virtual nodes per node (per unit of weight) on the hash ring", parse: int(1, 4096) },
  { key: "migrateOnStart", flag: "--migrate-on-start", env: "QUIVER_MIGRATE_ON_START", default: "off", help: "With --topology: when the shards' keys are placed by another ring (shards, weights or --vnodes changed, then a restart instead of a reload), move them at start while serving (on, one server) instead of refusing to start (off)", parse: oneOf("on", "off") },
  { key: "migrationCheckpoint", flag: "--migration-checkpoint", env: "QUIVER_MIGRATION_CHECKPOINT", default: "", help: "Where a running migration keeps its checkpoint (a writable file; a restart resumes from it); empty = <topology>.migration.json beside the topology file", parse: text },
  { key: "placementCheckMs", flag: "--placement-check-interval", env: "QUIVER_PLACEMENT_CHECK_INTERVAL", default: "5s", help: "With --topology: how often the shards' placement record is read; a server whose ring is no longer where the keys are (another server moved them) turns unready and refuses writes until reloaded on the new topology; 0 = never", parse: duration },
  { key: "topologyPath", flag: "--topology", env: "QUIVER_TOPOLOGY", default: "", help: "Redis shard topology file; empty = embedded store", parse: text },
  { key: "readFrom", flag: "--read-from", env: "QUIVER_READ_FROM", default: "nearest", help: "Redis reads: primary, replica or nearest healthy; overrides the topology file only when given", parse: oneOf("primary", "replica", "nearest") },
  { key: "writeAcks", flag: "--write-acks", env: "QUIVER_WRITE_ACKS", default: "1", help: "Redis replicas that must confirm a write (WAIT) before it is acknowledged (0 for a shard without replicas); overrides the topology file only when given", parse: int(0, 16) },
  { key: "demoEntities", flag: "--demo-entities", env: "QUIVER_DEMO_ENTITIES", default: "10000", help: "Demo drivers to load for the example registry (0 = none; skipped when the store already has data)", parse: int(0, 50_000_000) },
  { key: "maxBodyBytes", flag: "--max-body-bytes", env: "QUIVER_MAX_BODY_BYTES", default: String(4 << 20), help: "Largest request body accepted (413 above)", parse: int(1024, 1 << 30) },
  { key: "maxRows", flag: "--max-rows", env: "QUIVER_MAX_ROWS", default: "10000", help: "Most entity rows per lookup or push (400 above)", parse: int(1, 1_000_000) },
  { key: "maxLookupValues", flag: "--max-lookup-values", env: "QUIVER_MAX_LOOKUP_VALUES", default: "500000", help: "Most values one lookup may answer, entity rows × features, an embedding counting its dimensions (400 above): bounds an answer's size and memory", parse: int(1, 100_000_000) },
  { key: "maxFutureSkewMs", flag: "--max-future-skew", env: "QUIVER_MAX_FUTURE_SKEW", default: "1h", help: "How far in the future a pushed event time may be", parse: duration },
  { key: "embedderModel", flag: "--embedder-model", env: "QUIVER_EMBEDDER_MODEL", default: "", help: "ONNX sentence-embedding model file for views with index.embedder: onnx (no runtime is bundled yet; see README, Claim matching)", parse: text },
  { key: "vectorSnapshotMs", flag: "--vector-snapshot-interval", env: "QUIVER_VECTOR_SNAPSHOT_INTERVAL", default: "5m", help: "With --data-dir: how often changed vector indexes are snapshotted (also on shutdown); 0 = only on shutdown", parse: duration },
  { key: "vectorCatchUpMs", flag: "--vector-catch-up-interval", env: "QUIVER_VECTOR_CATCH_UP_INTERVAL", default: "60s", help: "With Redis shards and the change feed off (--cache-feed off): how often each vector index re-reads its view from the store, so claims other pods wrote are matched within about this (a shared feed carries them at once: then unused); 0 = never", parse: duration },
  { key: "cacheL1", flag: "--cache-l1", env: "QUIVER_CACHE_L1", default: "auto", help: "L1 in-process cache: on, off, or auto (on with --topology, off with the embedded store)", parse: oneOf("on", "off", "auto") },
  { key: "cacheL1Bytes", flag: "--cache-l1-bytes", env: "QUIVER_CACHE_L1_BYTES", default: String(100 * 1024 * 1024), help: "L1 byte budget (estimated heap bytes of cached rows)", parse: int(1024, 2 ** 40) },
  { key: "cacheTtlMs", flag: "--cache-ttl", env: "QUIVER_CACHE_TTL", default: "60s", help: "L1 time to live of a cached row (a first fill less up to a half, a refresh less up to a tenth, at random: rows filled together do not all come due together)", parse: positiveDuration },
  { key: "cacheNegativeTtlMs", flag: "--cache-negative-ttl", env: "QUIVER_CACHE_NEGATIVE_TTL", default: "5s", help: "Time to live of a cached miss (L1 and L2)", parse: positiveDuration },
  { key: "cacheGraceMs", flag: "--cache-grace", env: "QUIVER_CACHE_GRACE", default: "1h", help: "How long past its TTL an L1 row may be served (flagged stale) when the origin cannot answer", parse: duration },
  { key: "cacheFeedDownTtlMs", flag: "--cache-feed-down-ttl", env: "QUIVER_CACHE_FEED_DOWN_TTL", default: "1s", help: "While the change feed is not heard (its Redis down or unreachable), how long an L1 row read meanwhile stays fresh: it cannot hear of other pods' writes (L1 is expired, its rows kept as grace copies, when the feed is lost and again when it is back)", parse: positiveDuration },
  { key: "cacheRefreshGatherMs", flag: "--cache-refresh-gather", env: "QUIVER_CACHE_REFRESH_GATHER", default: "50ms", help: "How long L1 keys claimed for a refresh ahead (hits in the last quarter of their TTL) gather before they are read again together, one flight at a time; 0 = at the end of the claiming turn", parse: duration },
  { key: "cacheL2", flag: "--cache-l2", env: "QUIVER_CACHE_L2", default: "", help: "L2 Redis host:port shared by the pods of a site (also carries the change feed unless --cache-feed names another place); off disables it; empty = the topology file's cache.l2", parse: addressOrOff },
  { key: "cacheL2Sentinels", flag: "--cache-l2-sentinels", env: "QUIVER_CACHE_L2_SENTINELS", default: "", help: "L2 through Sentinel: comma-separated host:port list (with --cache-l2-master)", parse: addressList },
  { key: "cacheL2Master", flag: "--cache-l2-master", env: "QUIVER_CACHE_L2_MASTER", default: "quiver-l2", help: "Sentinel master name of the L2", parse: text },
  { key: "cacheL2TtlMs", flag: "--cache-l2-ttl", env: "QUIVER_CACHE_L2_TTL", default: "300s", help: "L2 time to live of a cached row", parse: positiveDuration },
  { key: "cacheL2TimeoutMs", flag: "--cache-l2-timeout", env: "QUIVER_CACHE_L2_TIMEOUT", default: "5ms", help: "Bound on each L2 call; a slower answer counts as a miss", parse: positiveDuration },
  { key: "cacheFeed", flag: "--cache-feed", env: "QUIVER_CACHE_FEED", default: "", help: "Redis host:port that carries the change feed between pods (one PUBLISH per acknowledged write batch, a heartbeat per pod per second); off = in-process only (other pods' writes show in L1 after up to its TTL); empty = the topology file's cache.feed, else the L2's Redis, else the topology's first shard by name", parse: addressOrOff },
  { key: "cacheFeedSentinels", flag: "--cache-feed-sentinels", env: "QUIVER_CACHE_FEED_SENTINELS", default: "", help: "Change feed through Sentinel: comma-separated host:port list (with --cache-feed-master)", parse: addressList },
  { key: "cacheFeedMaster", flag: "--cache-feed-master", env: "QUIVER_CACHE_FEED_MASTER", default: "quiver-feed", help: "Sentinel master name of the change feed's Redis", parse: text },
  { key: "shutdownDelayMs", flag: "--shutdown-delay", env: "QUIVER_SHUTDOWN_DELAY", default: "0s", help: "On SIGTERM, how long to go on serving with /readyz answering 503 (gRPC health NOT_SERVING) before the listeners close, so load balancers stop sending first (Kubernetes: a few seconds, below terminationGracePeriodSeconds); meanwhile every HTTP answer carries Connection: close, so clients on kept-alive connections reconnect to a ready pod instead of meeting a reset when the listener closes, and a second SIGTERM or SIGINT ends the delay; 0 = close at once", parse: duration },
  { key: "adminToken", flag: "--admin-token", env: "QUIVER_ADMIN_TOKEN", default: "", help: "When set, /admin routes and writes require Authorization: Bearer <token>: HTTP /v1/push, /push and /write-to-online-store (401 otherwise, body not parsed), and gRPC write methods as `authorization` metadata", parse: text },
  { key: "lookupTimeoutMs", flag: "--lookup-timeout-ms", env: "QUIVER_LOOKUP_TIMEOUT_MS", default: "50", help: "Lookup budget when the client sends no x-quiver-timeout-ms: storage that cannot answer by then yields UNAVAILABLE (defaults)", parse: int(1, 60_000) },
  { key: "maxConcurrency", flag: "--max-concurrency", env: "QUIVER_MAX_CONCURRENCY", default: "0", help: "Lookups and pushes in flight at most; 0 = adaptive (gradient limit on measured latency)", parse: int(0, 100_000) },
  { key: "admissionLimitAllowance", flag: "--admission-limit-allowance", env: "QUIVER_ADMISSION_LIMIT_ALLOWANCE", default: "4", help: "The adaptive limit's queue allowance (Gradient2's): requests in flight it keeps beyond what measured latency allows; under sustained overload the limit settles near twice this (8 by default); 1 settles at 4: lower latency for admitted requests and refusals, fewer lookups answered for clients that resend a 503 at once (README, Failure behaviour)", parse: int(1, 1000) },
  { key: "admissionQueue", flag: "--admission-queue", env: "QUIVER_ADMISSION_QUEUE", default: "64", help: "Requests that may wait for a slot beyond the concurrency limit; more get 503 + Retry-After at once", parse: int(0, 100_000) },
  { key: "admissionQueueTimeoutMs", flag: "--admission-queue-timeout-ms", env: "QUIVER_ADMISSION_QUEUE_TIMEOUT_MS", default: "50", help: "Longest a request waits for a slot before it gets 503, while no queue stands", parse: int(1, 60_000) },
  { key: "admissionQueueTargetMs", flag: "--admission-queue-target-ms", env: "QUIVER_ADMISSION_QUEUE_TARGET_MS", default: "5", help: "Once requests have waited longer than this (ms) for a slot for --overload-interval-ms on end, the queue stands: newest served first, waits cut at the learnt standing wait (--admission-queue-standing-wait-ms, at most this); 0 = plain FIFO", parse: int(0, 60_000) },
  { key: "admissionQueueStandingWaitMs", flag: "--admission-queue-standing-wait-ms", env: "QUIVER_ADMISSION_QUEUE_STANDING_WAIT_MS", default: "1.25", help: "While the queue stands, a request that has waited this long (ms) for a slot gets 503 (at most --admission-queue-target-ms; 0 = that target): where each standing episode starts, learnt longer up to --admission-queue-standing-wait-max-ms while longer waits save refusals (clients that resend a 503 at once; README, Failure behaviour)", parse: decimal(0, 60_000) },
  { key: "admissionQueueStandingWaitMaxMs", flag: "--admission-queue-standing-wait-max-ms", env: "QUIVER_ADMISSION_QUEUE_STANDING_WAIT_MAX_MS", default: "0", help: "Longest standing-queue wait (ms) that admission may learn, when refused clients come back at once and longer waits refuse fewer; --admission-queue-standing-wait-ms or less keeps the wait fixed; 0 = --admission-queue-target-ms", parse: decimal(0, 60_000) },
  { key: "admissionQueueStandingRoom", flag: "--admission-queue-standing-room", env: "QUIVER_ADMISSION_QUEUE_STANDING_ROOM", default: "0.5", help: "While the queue stands at its first wait (--admission-queue-standing-wait-ms), it keeps only the waiters that the slots' releases over this share of that wait would take (at least one) and answers other arrivals 503 at once, their bodies unread; a learnt longer wait queues every arrival again (README, Failure behaviour); 0 = every arrival waits its turn", parse: decimal(0, 100) },
  { key: "overloadDelayMs", flag: "--overload-delay-ms", env: "QUIVER_OVERLOAD_DELAY_MS", default: "5", help: "CPU overload shedding: once event-loop turns have run longer than this (ms) for --overload-interval-ms under load, lookups and pushes that waited in their turn longer get 503 at once; 0 = off", parse: int(0, 10_000) },
  { key: "overloadIntervalMs", flag: "--overload-interval-ms", env: "QUIVER_OVERLOAD_INTERVAL_MS", default: "100", help: "How long turns must run over --overload-delay-ms before CPU overload shedding starts; shedding ends after this long without a refusal, or once such a stretch refused at most 1 in 20 requests", parse: int(1, 60_000) },
  { key: "overloadTurnMs", flag: "--overload-turn-ms", env: "QUIVER_OVERLOAD_TURN_MS", default: "0.75", help: "Once CPU overload shedding has started, how long (ms) each event-loop turn serves lookups and pushes at first; the rest get 503 at once, the excess before the serving (admitted requests wait about two such turns, refusals about one); the budget grows towards --overload-turn-max-ms while longer turns save refusals (clients that resend at once); 0 = --overload-delay-ms, serving first", parse: decimal(0, 10_000) },
  { key: "overloadTurnMaxMs", flag: "--overload-turn-max-ms", env: "QUIVER_OVERLOAD_TURN_MAX_MS", default: "0", help: "Longest turn budget (ms) that CPU overload shedding may learn, when refusals eat the turns and longer turns refuse fewer (a closed population of clients resending at once); --overload-turn-ms or less keeps the budget fixed; 0 = --overload-delay-ms", parse: decimal(0, 10_000) },
  { key: "commonStallMs", flag: "--common-stall-ms", env: "QUIVER_COMMON_STALL_MS", default: "1000", help: "Redis shards: timeouts that hit most shards together are not counted against any shard's breaker for up to this long per shard in all within the breakers' 10 s window (a stall they share, not a shard's fault); longer, they count (the whole tier is down); 0 = off", parse: int(0, 60_000) },
  { key: "youngGcIntervalMs", flag: "--young-gc-interval-ms", env: "QUIVER_YOUNG_GC_INTERVAL_MS", default: "50", help: "While busy, collect the young generation this often (ms), so request memory is reused warm instead of cycling through the large nursery a big store buys (Bun, heaps of 128 MiB or more; cuts the tail); 0 = the runtime's own schedule only", parse: int(0, 60_000) },
  { key: "youngGcMinRequests", flag: "--young-gc-min-requests", env: "QUIVER_YOUNG_GC_MIN_REQUESTS", default: "256", help: "Lookups and pushes admitted since the last paced young collection for the next one to run (an idle server pays nothing)", parse: int(0, 100_000_000) },
  { key: "youngGcMinHeapMb", flag: "--young-gc-min-heap-mb", env: "QUIVER_YOUNG_GC_MIN_HEAP_MB", default: "128", help: "Heap size (MiB, as of the last collection) from which the young generation is paced (--young-gc-interval-ms); a smaller heap gets the runtime's own schedule", parse: int(0, 1_000_000) },
  { key: "backgroundNice", flag: "--background-nice", env: "QUIVER_BACKGROUND_NICE", default: "19", help: "Nice value (0-19) given to the runtime's background threads, the JIT compiler's, the allocator's scavenger and the heap's block warm-up (JSCWarmUp), so they run in the serving thread's idle time instead of taking its core mid-request (Linux; halved the serving thread's run-queue wait on one core); -1 leaves them as the runtime starts them", parse: int(-1, 19) },
  { key: "warmupLookups", flag: "--warmup-lookups", env: "QUIVER_WARMUP_LOOKUPS", default: "50000", help: "Lookups the server sends itself before it listens, on stored entities it samples, so its first clients meet optimised code (a cold server's first second at 28k lookups/s had p99 230-430 ms); taken back out of the metrics; ~1.5 s; 0 = none", parse: int(0, 10_000_000) },
  { key: "warmupShapes", flag: "--warmup-shapes", env: "QUIVER_WARMUP_SHAPES", default: "json,grpc", help: "What the warm-up sends, comma-separated: json (single-entity /v1/lookup), batch (20 entities), msgpack, feast (/get-online-features), grpc (Lookup and GetOnlineFeatures to its own port, a fifth as many calls, only when the gRPC edge is on; ~2.5 s on one core; cold, a server refused 18-37% of gRPC calls in its first 3 s at 3-5k calls/s in two of four runs, warmed none). Warm what clients send: each shape makes shared code more general; with all of them, single JSON lookups ran ~8% slower ever after than with no warm-up (json alone: within noise; json,grpc: ~3.5%)", parse: shapeList },
  { key: "answerBatch", flag: "--answer-batch", env: "QUIVER_ANSWER_BATCH", default: "16", help: "Answers finished in one event-loop turn after its first --answer-batch-after leave together, in batches of up to this many (or once --answer-hold-ms old), the rest when the turn ends: one wake-up of a client on the same host serves several (~1.17x lookups/s at saturation on loopback); 0 or 1 = every answer leaves at once", parse: int(0, 4096) },
  { key: "answerBatchAfter", flag: "--answer-batch-after", env: "QUIVER_ANSWER_BATCH_AFTER", default: "4", help: "Answers each event-loop turn lets go at once before it batches the rest: a server below its capacity reads a few requests per turn and holds none", parse: int(1, 4096) },
  { key: "answerHoldMs", flag: "--answer-hold-ms", env: "QUIVER_ANSWER_HOLD_MS", default: "0.2", help: "A batch of answers whose first has waited this long (ms) leaves with the next answer finished; 0 = only --answer-batch and the turn's end bound the wait", parse: decimal(0, 1000) },
  { key: "sourcesPath", flag: "--sources", env: "QUIVER_SOURCES", default: "", help: "Streaming sources file (Redis Streams / NATS JetStream → feature views); empty = no stream consumers", parse: text },
];

/**
 * Resolves the configuration: flag, then environment, then default. Throws
 * with the setting's name on any bad value or unknown flag, so a typo stops
 * start-up instead of being ignored.
 */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): QuiverConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}"; see --help`);
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!SETTINGS.some((s) => s.flag === name)) throw new Error(`unknown flag ${name}; see --help`);
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`${name}: a value is required`);
    flags.set(name, value);
  }
  const explicit = new Set<keyof QuiverConfig>();
  const out: Record<string, unknown> = { explicit };
  for (const s of SETTINGS) {
    const fromFlag = flags.get(s.flag);
    const fromEnv = env[s.env];
    const [raw, where] = fromFlag !== undefined ? [fromFlag, s.flag] : fromEnv !== undefined && fromEnv !== "" ? [fromEnv, s.env] : [s.default, `${s.flag} (default)`];
    out[s.key] = s.parse(raw, where);
    if (fromFlag !== undefined || (fromEnv !== undefined && fromEnv !== "")) explicit.add(s.key);
  }
  return out as unknown as QuiverConfig;
}

export function helpText(): string {
  const rows = SETTINGS.map((s) => `  ${`${s.flag} <v>`.padEnd(24)} ${s.env.padEnd(24)} default ${JSON.stringify(s.default).padEnd(24)} ${s.help}`);
  return `Usage: bun src/main.ts [flags]\n\n  ${"flag".padEnd(24)} ${"env".padEnd(24)} ${"default".padEnd(32)} meaning\n${rows.join("\n")}\n`;
}
