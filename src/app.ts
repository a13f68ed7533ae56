import { hostname } from "node:os";
import type { GrpcEdge, GrpcWarmupReport } from "./api/grpc/index.ts";
import { createHttpEdge, type HttpEdge, type TopologyAdmin, type WarmupReport, warmUp } from "./api/http/index.ts";
import { type CacheInput, type CacheSettings, type FeedSettings, resolveCacheSettings } from "./cache/cache-config.ts";
import type { CacheTier } from "./cache/index.ts";
import type { L2Tier } from "./cache/l2-slot.ts";
import { viewsToInvalidate } from "./cache/registry-changes.ts";
import type { QuiverConfig } from "./config/config.ts";
import { type ChangeFeed, type FeedAddress, LocalChangeFeed, PublishingKvNode } from "./feed/index.ts";
import { failedPrecondition, invalidAll, QuiverError } from "./errors/index.ts";
import type { CompiledSource, ConsumerOptions, IngestService } from "./ingest/index.ts";
import { ArenaKvNode, type MemoryReporting } from "./kv/arena-node.ts";
import type { DurableKvNode } from "./kv/durable-node.ts";
import type { ReopenOptions } from "./kv/durable-reopen.ts";
import type { KvNode } from "./kv/kv-node.ts";
import type { LayoutLedger } from "./kv/layout-ledger.ts";
import { MapLayoutLedger } from "./kv/map-layout-ledger.ts";
import { HealthMonitor } from "./ops/health-score.ts";
import { AnomalyBuffer, MeteredKvNode, MetricsRegistry, registerBreakerGauge, registerShardGauges, resilienceObserver, type RewindKeep, ShedRecorder } from "./ops/index.ts";
import { loadRegistryFile, mismatchIssues, type Registry, RegistryHolder, registryLayouts } from "./registry/index.ts";
import { collectGarbage, loadYoungGc, releaseAtOnce, TurnBatch, YoungGcPacer } from "./runtime/index.ts";
import { FeatureServing, loadDemoData, LookupService, PushService, sampleViews, storeIsEmpty, type ViewSample, type WarmupShape } from "./serving/index.ts";
import { AdaptiveAdmission, CommonCauseJudge, LoopLagProbe, LoopStallJudge, type ResilienceObserver, type StallJudge, SuspendablePressure, TurnSojourn } from "./resilience/index.ts";
import type { ConnectedShards, ShardSpec, Topology } from "./shard/index.ts";
import { MatchService, SnapshotStore, VectorIndexes } from "./vector/index.ts";
import { checkNodeFiles, placeEmbeddedRows } from "./store/embedded-placement.ts";
import { type ShardMember, ShardedStore } from "./store/sharded-store.ts";

/** A built Quiver: the HTTP app and what it runs on, ready to serve. */
export interface Quiver {
  readonly http: HttpEdge;
  /**
   * The gRPC edge (not yet listening: main.ts binds it beside HTTP);
   * `undefined` when gRPC is off (`--grpc-port -1`): its modules are then
   * never loaded (see buildQuiver).
   */
  readonly grpc: GrpcEdge | undefined;
  /** The transport-neutral use cases every edge calls. */
  readonly serving: FeatureServing;
  readonly registry: RegistryHolder;
  /** The storage tier (ring over embedded nodes or Redis shards). */
  readonly store: ShardedStore;
  readonly metrics: MetricsRegistry;
  /** Recent degraded reads, failed writes, breaker transitions and shed requests. */
  readonly anomalies: AnomalyBuffer;
  /** Process-wide admission control (the gRPC edge shares it). */
  readonly admission: AdaptiveAdmission;
  /** Acknowledged writes as events, for caches, the claim index and freshness metrics. */
  readonly feed: ChangeFeed;
  /** Stream consumers, when started with a sources file. */
  readonly ingest: IngestService | undefined;
  /** Vector indexes of the views that declare `index:` (claim matching). */
  readonly vectors: VectorIndexes;
  /** The L1/L2 cache tier in front of the store, when any tier is on. */
  readonly cache: CacheTier | undefined;
  /** A one-line description for the start-up log. */
  readonly summary: string;
  /**
   * Start-up warm-up, for before clients are sent here (main.ts): `lookups`
   * lookups of the HTTP `shapes` to the edge's hot routes in process
   * (api/http/warmup.ts) and, with `grpc` among them and the gRPC edge
   * listening (`grpcListening`), a fifth as many calls to its own port
   * (api/grpc/warmup.ts), on entities sampled from the store; then takes them
   * back out of the metrics and the health interval.
   */
  warmUp(lookups: number, shapes: readonly WarmupShape[], grpcListening: boolean): Promise<StartupWarmup>;
  /** Shutdown begins: /readyz answers 503 and gRPC health NOT_SERVING while requests are still served (main.ts's --shutdown-delay). */
  beginDrain(): void;
  close(): Promise<void>;
}

/** What the start-up warm-up did (Quiver.warmUp). */
export interface StartupWarmup {
  readonly http: WarmupReport;
  readonly grpc: GrpcWarmupReport | undefined;
  /** Stored entities the lookups asked for (0: the store was empty, the keys were made up). */
  readonly sampledEntities: number;
  readonly ms: number;
}

/**
 * Stored entities the warm-up asks for per view: enough that with an L1 cache
 * in front of Redis shards (on by default there) the lookups that miss it, and
 * so take the shards' path, number in the thousands too: with 64 a view, 50,000
 * warm-up lookups were 320 reads of Redis and the rest L1 hits.
 */
const WARMUP_ENTITIES_PER_VIEW = 1024;

/**
 * Series the start-up warm-up does not take back: what happened meanwhile that
 * its own lookups did not make (stream consumers' events and writes, vector
 * index upkeep, invalidations, a move) or that is a fact about a shard (its
 * failures, retries and breaker changes, which the breaker state gauge and
 * the anomaly buffer keep). Rewound whole, 30,000 events consumed and written
 * during the warm-up read 0 on /metrics and /readyz, and a breaker read open
 * with no failure or transition behind it.
 */
const KEPT_AFTER_WARMUP = /^quiver_(shard_|ingest_|vector_(build|changes|feed|snapshot)|cache_(invalidation|gap_clears|keys_superseded|l2_repaired)|migration_)/;
const keptAfterWarmup: RewindKeep = (metric, labels) => KEPT_AFTER_WARMUP.test(metric) || (metric.startsWith("quiver_store_") && labels["op"] === "put");

/** gRPC warm-up calls per HTTP warm-up lookup: 10,000 of the default 50,000 (5,000 left the first second's p99 at 76–208 ms; api/grpc/warmup.ts). */
const GRPC_WARMUP_SHARE = 0.2;

export interface BuildOptions {
  /** Injected clock (tests use a fake one for max-age and timestamps). */
  readonly clock?: () => number;
  /** This pod's id on the change feed; defaults to host name and process id. */
  readonly podId?: string;
  /** Stream consumer tuning and crash-test hooks (the standalone ingest CLI passes them). */
  readonly consumerOptions?: ConsumerOptions;
  /**
   * The process serves sockets on a real event loop (`src/main.ts`): CPU
   * overload shedding by loop-turn sojourn (--overload-delay-ms) is on. Off
   * for in-process drivers (tests calling `app.request`, the allocation
   * bench): they chain requests in microtasks, which never end a loop turn,
   * so sequential requests would read as one ever-growing turn.
   */
  readonly servesSockets?: boolean;
  /** How the durable nodes (--data-dir) reopen a file whose SQLite thread was lost (tests: a fake clock, few attempts). */
  readonly durableReopen?: ReopenOptions;
}

/**
 * The one wiring place: builds every part from configuration and hands each
 * its dependencies. Throws (QuiverError for the registry, Error naming the
 * setting otherwise) when the configuration cannot work.
 */
export async function buildQuiver(config: QuiverConfig, options: BuildOptions = {}): Promise<Quiver> {
  const clock = options.clock ?? Date.now;
  // The gRPC edge's modules, only when gRPC is on. They are ~12k of the ~18.6k code cells a built server
  // holds (grpc-js alone ~7.7k), and every collection, young or full, walks all of them (their finalizers
  // run whether or not anything was collected): idle, a young collection took 0.50 ms with them against
  // 0.24 ms without (`npm run bench -- lookup-alloc`), and the pacer runs one every 50 ms under load
  // (runtime/young-gc-pacer.ts). The same reason keeps other code out unless configured: the cache tier,
  // the shard guard, and the YAML parser and validator that read the registry, topology and sources files
  // (in a worker: runtime/off-thread.ts). Loaded first, as a static import
  // was: evaluating them blocks the loop for ~0.3 s, which must not land on stream consumers already
  // reading (a store read of theirs timed out behind it).
  const grpcModule = config.grpcPort < 0 ? undefined : await import("./api/grpc/index.ts");
  const registry = new RegistryHolder(await loadRegistryFile(config.registryPath, clock()));
  const metrics = new MetricsRegistry();
  const anomalies = new AnomalyBuffer();
  const stopAnomalyCleanup = anomalies.startCleanup();

  // The loop-turn signal serves admission (CPU overload shedding) and the shards' timeout judge: a shard call that
  // times out while this process is overloaded is its own doing, not the shard's (resilience/local-stall.ts).
  // The lag probe sees the loop's whole load, including the turns that handle storage replies and encode answers.
  const sheds = options.servesSockets === true && config.overloadDelayMs > 0;
  const lagProbe = sheds ? new LoopLagProbe().start() : undefined;
  const pressure = sheds ? new TurnSojourn({ targetMs: config.overloadDelayMs, sustainMs: config.overloadIntervalMs, turnMs: config.overloadTurnMs > 0 ? config.overloadTurnMs : config.overloadDelayMs, maxTurnMs: config.overloadTurnMaxMs > 0 ? config.overloadTurnMaxMs : config.overloadDelayMs }, undefined, undefined, lagProbe) : undefined;
  // Timeouts that hit most shards together are not one shard's fault either (resilience/common-cause.ts).
  let shardCount = (): number => 0;
  const loopJudge = new LoopStallJudge(pressure, lagProbe);
  const judge = config.commonStallMs > 0 ? new CommonCauseJudge(loopJudge, () => shardCount(), { maxEpisodeMs: config.commonStallMs }) : loopJudge;
  // A durable node's lost SQLite thread and a reopen given up are failed writes of that node (GET /admin/anomalies).
  const durableReopen: ReopenOptions = {
    ...options.durableReopen,
    onEvent: (event, node) => {
      if (event !== "reopened") anomalies.record("failed_write", node, event === "thread_lost" ? "sqlite_thread_lost" : "sqlite_reopen_gave_up");
    },
  };
  const storage = await openStorage(config, resilienceObserver(metrics, anomalies), judge, durableReopen);
  const store = new ShardedStore(storage.members, { vnodesPerNode: config.vnodes });
  shardCount = () => store.members.length;
  const shards = storage.shards;
  if (config.dataDir && !shards) {
    // Rows placed by another ring (--embedded-nodes or --vnodes changed since the data directory was written) are moved first.
    const { DurableKvNode } = await import("./kv/durable-node.ts");
    const placed = await placeEmbeddedRows(store, config.dataDir, (id, file) => DurableKvNode.open(id, file, { sync: config.durability }));
    if (placed.moved > 0 || placed.drained.length > 0) {
      console.error(`quiver: ${config.dataDir} re-placed for [${placed.ring}] (was [${placed.was ?? "not recorded"}]): ${placed.moved} rows moved${placed.drained.length > 0 ? `, ${placed.drained.join(", ")} emptied and removed` : ""}`);
    }
  }
  // What the store holds decides whether this registry and topology may serve it (refused: the store is closed first).
  let resumed: Awaited<ReturnType<ConnectedShards["settlePlacement"]>>;
  try {
    await reconcileLayouts(storage.ledger, registry.current);
    resumed = shards ? await shards.settlePlacement(store, migrationCheckpointPath(config), config.migrateOnStart === "on", { drainMs: moveDrainMs(config) }) : undefined;
  } catch (e) {
    // Let go of the store (connections, and the durable files' locks) for a process that goes on, as tests do.
    await (shards ? shards.close() : store.close());
    throw e;
  }
  // Another server's topology change (a reload, --migrate-on-start) moves keys away from this one's ring: noticed here.
  const stopPlacementWatch = shards && config.placementCheckMs > 0 ? shards.watchPlacement(store, config.placementCheckMs) : () => {};
  const podId = options.podId ?? `${hostname()}:${process.pid}`;
  const cacheSettings = resolveCacheSettings(cacheInputOf(config), storage.cacheFile ?? {}, shards !== undefined, storage.shardFeed);
  // A server whose ring is not where the keys are reads misses (and old rows) the ready ones must not find in L2.
  const sharedFills = shards === undefined ? undefined : () => shards.placementProblem === undefined;
  const { feed, cache, moveFeed } = await openCaches(cacheSettings, store, podId, metrics, clock, config.cacheRefreshGatherMs, sharedFills);
  // Where the feed runs now: on the first shard, it follows a topology reload that changes which one that is (feedFollows).
  let feedPlace = cacheSettings.feed;
  const metered: KvNode = new MeteredKvNode(new PublishingKvNode(cache ?? store, feed, clock), metrics);

  let demoRows = 0;
  if (config.demoEntities > 0 && (await storeIsEmpty(store))) {
    demoRows = await loadDemoData(store, registry.current, config.demoEntities, clock());
  }
  // Vector indexes: from snapshots plus a catch-up scan, or built by a scan; then fed by the change feed.
  const vectors = new VectorIndexes({
    store,
    feed,
    metrics,
    ...(config.dataDir ? { snapshots: new SnapshotStore(`${config.dataDir}/vector`) } : {}),
    snapshotIntervalMs: config.vectorSnapshotMs,
    // Pods sharing Redis shards hear each other's writes only over a shared feed: without one, a claim pushed on
    // another pod was never matched here (until a restart); re-read every view from the store instead.
    catchUpIntervalMs: shards !== undefined && feed.state().kind === "local" ? config.vectorCatchUpMs : 0,
    embedders: { modelPath: config.embedderModel },
    clock,
    // During a move a read may answer a copied row hiding a newer one at the old owner: not followed back then.
    readsSettled: () => !store.migrating,
  });
  await vectors.start(registry.current);
  // Restoring a durable store, bulk-loading demo rows and building indexes leave transient garbage; collect it before serving.
  collectGarbage();

  // Set aside while the start-up warm-up runs (suspendable-pressure.ts): its own lookups are not an overload to shed.
  const admissionPressure = pressure !== undefined ? new SuspendablePressure(pressure) : undefined;
  const admission = new AdaptiveAdmission({
    ...(admissionPressure !== undefined ? { pressure: admissionPressure } : {}),
    queue: config.admissionQueue,
    queueTimeoutMs: config.admissionQueueTimeoutMs,
    queueTargetMs: config.admissionQueueTargetMs,
    queueStandingWaitMs: config.admissionQueueStandingWaitMs,
    queueStandingWaitMaxMs: config.admissionQueueStandingWaitMaxMs,
    queueStandingRoom: config.admissionQueueStandingRoom,
    queueIntervalMs: config.overloadIntervalMs,
    queueAllowance: config.admissionLimitAllowance,
    ...(config.maxConcurrency > 0 ? { fixedLimit: config.maxConcurrency } : {}),
  });
  const health = new HealthMonitor(admission, { targetMs: config.lookupTimeoutMs });
  health.start();
  const youngGc = await startYoungGcPacer(config, admission, metrics);
  let draining = false;
  // While the start-up warm-up runs on a listening gRPC port: its health check answers NOT_SERVING.
  let warming = false;
  registerAdmissionGauges(metrics, admission, health);
  registerAnomalyGauges(metrics, anomalies);

  const lookup = new LookupService(metered, clock);
  // Writers (pushes, streaming writers) may not write through a ring that is not where the keys are; lookups read as usual.
  const writable: KvNode = shards ? new (await import("./shard/placement-gate.ts")).PlacementGateNode(metered, () => shards.placementProblem) : metered;
  const push = new PushService(writable, { maxFutureSkewMs: config.maxFutureSkewMs }, clock);
  registerGauges(metrics, registry, store, storage.embedded);
  registerDurableGauges(metrics, storage.durable);
  if (shards) {
    registerShardGauges(metrics, shards);
    registerBreakerGauge(metrics, () => shards.guardStates());
    metrics.gauge("quiver_placement_mismatch", "1 while this server's ring is not where the shards' keys are placed or moving to (another server moved them): /readyz fails until it is reloaded on that topology.", () => [
      { value: shards.placementProblem === undefined ? 0 : 1 },
    ]);
  }
  // Writers tell duplicates from late events by the stored rows, read from the store itself: a cached copy would call
  // an event the store lost (a shard restarted empty, a failover) a duplicate, and a replay would never rewrite it.
  const ingest = config.sourcesPath ? await startIngest(config.sourcesPath, registry.current, { push, store, metrics, consumerName: podId, ...(options.consumerOptions ? { consumerOptions: options.consumerOptions } : {}) }) : undefined;
  const readinessDetail = async (): Promise<Record<string, unknown>> => ({
    ...(shards ? { shards: shards.stats(), migration: shards.migration?.progress() ?? null } : {}),
    ...(ingest ? { ingest: ingest.status() } : {}),
    ...(cache ? { cache: cache.state() } : {}),
    feed: { ...feed.state(), runsOn: describeFeed(feedPlace) },
    degraded: degradedParts(cache, feed),
  });

  const serving = new FeatureServing(registry, lookup, push, { maxRows: config.maxRows, maxValues: config.maxLookupValues });
  const match = new MatchService(vectors, metered, lookup, metrics);
  // Refusals of both edges in one series and one anomaly kind.
  const refusals = new ShedRecorder(metrics, anomalies);
  let reloadingRegistry = false;
  const reloadRegistryNow = async (): Promise<Registry> => {
    const next = await loadRegistryFile(config.registryPath, clock());
    const before = registry.current;
    // Refused whole, before anything changes, when it would break the running stream mappings or misread stored rows.
    const remapped = ingest === undefined ? undefined : sourcesAgainst(ingest, next, config.sourcesPath);
    vectors.checkEmbedders(next);
    await reconcileLayouts(storage.ledger, next);
    registry.swap(next);
    vectors.reconfigure(next);
    if (remapped !== undefined) ingest?.remap(remapped);
    // Cached rows of a view whose version or features changed are wrong now: drop them on every pod.
    // The new registry is live: an L2 that cannot take the invalidation now takes it when it can (CacheTier.invalidateAfterChange).
    for (const view of viewsToInvalidate(before, next)) {
      if (cache) cache.invalidateAfterChange({ view });
      else feed.invalidate({ view });
    }
    return next;
  };
  const http = createHttpEdge({
    registry,
    serving,
    match,
    store,
    metrics,
    anomalies,
    admission,
    sheds: refusals,
    // In-process callers chain requests in microtasks, which never end a turn: only a socket server batches.
    release: options.servesSockets === true && config.answerBatch > 1 ? new TurnBatch<Response>({ max: config.answerBatch, atOnce: config.answerBatchAfter, ...(config.answerHoldMs > 0 ? { maxHoldMs: config.answerHoldMs } : {}) }) : releaseAtOnce,
    health,
    draining: () => draining,
    unready: () => shards?.placementProblem ?? durableProblem(storage.durable),
    limits: { maxBodyBytes: config.maxBodyBytes, maxRows: config.maxRows, lookupTimeoutMs: config.lookupTimeoutMs },
    reloadRegistry: async (): Promise<Registry> => {
      // One at a time: two interleaved reloads could swap in the older file's registry last (it read first, the
      // other checked and swapped first), and check the ledger against a registry about to be replaced.
      if (reloadingRegistry) throw failedPrecondition("reload_in_progress", "a registry reload is running; wait for it to finish and reload again");
      reloadingRegistry = true;
      try {
        return await reloadRegistryNow();
      } finally {
        reloadingRegistry = false;
      }
    },
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    ...(cache ? { cache } : {}),
    ...(shards
      ? {
          topology: topologyAdmin(config, shards, store, (next) => {
            const moved = feedFollows(feedPlace, next);
            if (moved === undefined || moveFeed === undefined) return;
            console.error(`quiver: change feed moves to ${describeFeed(moved)}, the topology's first shard now (was ${describeFeed(feedPlace)})`);
            feedPlace = moved;
            moveFeed(moved.where);
          }),
        }
      : {}),
    readinessDetail,
  });

  const grpc = grpcModule?.createGrpcEdge({
    serving,
    metrics,
    // The same rule as /readyz: serving unless draining (or warming up, while HTTP is not listening yet). A storage
    // outage degrades answers (defaults flagged UNAVAILABLE) but must not take every pod out of its balancer at once.
    ready: async () => !draining && !warming && shards?.placementProblem === undefined && durableProblem(storage.durable) === undefined,
    admission,
    sheds: refusals,
    match,
    limits: {
      maxMessageBytes: config.maxBodyBytes,
      keepaliveMs: config.grpcKeepaliveMs,
      keepaliveTimeoutMs: 20_000,
      requestWaitMs: config.grpcRequestWaitMs,
      maxConnectionAgeMs: config.grpcMaxConnectionAgeMs,
      maxConnectionAgeGraceMs: config.grpcMaxConnectionAgeGraceMs,
      maxConnectionIdleMs: config.grpcMaxConnectionIdleMs,
      streamIdleMs: config.grpcStreamIdleMs,
      lookupTimeoutMs: config.lookupTimeoutMs,
    },
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
  });

  return {
    http,
    grpc,
    serving,
    registry,
    store,
    metrics,
    anomalies,
    admission,
    feed,
    ingest,
    vectors,
    cache,
    warmUp: async (lookups: number, shapes: readonly WarmupShape[], grpcListening: boolean): Promise<StartupWarmup> => {
      const started = performance.now();
      const mark = metrics.mark();
      warming = true;
      admissionPressure?.suspend();
      let httpReport: WarmupReport;
      let grpcReport: GrpcWarmupReport | undefined;
      let samples: ViewSample[];
      try {
        samples = await sampleViews(store, registry.current, WARMUP_ENTITIES_PER_VIEW, started + 2_000);
        httpReport = await warmUp(http.nativeRoutes, samples, { lookups, shapes });
        grpcReport = grpc !== undefined && grpcListening && shapes.includes("grpc") ? await grpc.warmUp(samples, { calls: Math.ceil(lookups * GRPC_WARMUP_SHARE) }) : undefined;
      } finally {
        warming = false;
        admissionPressure?.resume();
        metrics.rewind(mark, keptAfterWarmup);
        admission.countFromHere();
      }
      const sampledEntities = samples.reduce((n, s) => n + (s.stored ? s.entities.length : 0), 0);
      return { http: httpReport, grpc: grpcReport, sampledEntities, ms: Math.round(performance.now() - started) };
    },
    summary: `${storage.describe}; ${describeCaches(cacheSettings)}; ${registry.current.views.size} feature views${demoRows > 0 ? `; ${demoRows} demo rows loaded` : ""}${resumed ? "; resuming an interrupted migration" : ""}${ingest ? `; consuming ${ingest.status().length} stream source(s)` : ""}`,
    beginDrain: () => {
      draining = true;
    },
    close: async () => {
      draining = true;
      health.stop();
      youngGc?.stop();
      stopAnomalyCleanup();
      stopPlacementWatch();
      lagProbe?.stop();
      // Consumers first: they finish and ack the batch in hand while the store is still open.
      await ingest?.stop();
      await vectors.close();
      await feed.close();
      // A running migration stops at a whole page, checkpointed, before its shards close (the next start resumes it).
      await shards?.pauseMigration();
      // The cache tier closes the store below it.
      await (cache ?? store).close();
      await shards?.close();
    },
  };
}

/** Loads the sources file against the live registry and starts one consumer per source (client libraries load only here). */
async function startIngest(path: string, registry: Registry, deps: Omit<Parameters<typeof IngestService.start>[1], "metrics"> & { readonly metrics: MetricsRegistry }): Promise<IngestService> {
  const { IngestMetrics, IngestService, loadSourcesFile } = await import("./ingest/index.ts");
  const sources = await loadSourcesFile(path, registry);
  return IngestService.start(sources, { ...deps, metrics: new IngestMetrics(deps.metrics) });
}

/** The streaming writers' mappings compiled against a reloaded registry; a mapping it breaks refuses the reload (400). */
function sourcesAgainst(ingest: IngestService, next: Registry, sourcesPath: string): CompiledSource[] {
  try {
    return ingest.compileFor(next);
  } catch (e) {
    if (!(e instanceof QuiverError) || e.code !== "invalid_sources") throw e;
    const why = `; the streaming writers map onto it from ${sourcesPath}: keep it, or change that file and restart them first`;
    throw invalidAll("incompatible_registry", e.issues.map((i) => ({ path: i.path, message: i.message + why })));
  }
}

/**
 * Records the registry's view layouts in the store's ledger (each Redis shard,
 * the durable data directory, or this process's memory), or refuses the
 * registry (a start; a reload: 400) naming each view whose stored rows it would
 * misread. Places the ledger cannot reach are logged and checked the next time.
 */
async function reconcileLayouts(ledger: LayoutLedger, registry: Registry): Promise<void> {
  const { mismatches, unreachable } = await ledger.reconcile(registryLayouts(registry));
  for (const where of unreachable) console.error(`quiver: layout ledger not checked on ${where}; it is checked again at the next start or registry reload`);
  if (mismatches.length > 0) throw invalidAll("incompatible_registry", mismatchIssues(mismatches, registry));
}

/** Where storage comes from: embedded nodes, or connected Redis shards. */
interface Storage {
  readonly members: ShardMember[];
  readonly describe: string;
  readonly shards?: ConnectedShards;
  /** The embedded store's nodes, which account for the memory they hold (none with Redis shards). */
  readonly embedded?: readonly { readonly id: string; readonly node: MemoryReporting }[];
  /** The embedded nodes' SQLite files (--data-dir). */
  readonly durable?: readonly DurableKvNode[];
  /** The topology file's `cache:` section. */
  readonly cacheFile?: CacheInput;
  /** Where the change feed runs when no setting names it and there is no L2: the topology's first shard by name. */
  readonly shardFeed?: FeedSettings;
  /** Where the layouts of stored rows are kept, as long as the rows are. */
  readonly ledger: LayoutLedger;
}

/** Flag/env cache settings, only those given (the topology file's fill the rest). */
function cacheInputOf(config: QuiverConfig): CacheInput {
  const given = config.explicit;
  const sentinels = config.cacheL2Sentinels.split(",").filter((a) => a !== "");
  const feedSentinels = config.cacheFeedSentinels.split(",").filter((a) => a !== "");
  return {
    ...(given.has("cacheL1") ? { l1: config.cacheL1 } : {}),
    ...(given.has("cacheL1Bytes") ? { l1MaxBytes: config.cacheL1Bytes } : {}),
    ...(given.has("cacheTtlMs") ? { ttlMs: config.cacheTtlMs } : {}),
    ...(given.has("cacheNegativeTtlMs") ? { negativeTtlMs: config.cacheNegativeTtlMs } : {}),
    ...(given.has("cacheGraceMs") ? { graceMs: config.cacheGraceMs } : {}),
    ...(given.has("cacheFeedDownTtlMs") ? { feedDownTtlMs: config.cacheFeedDownTtlMs } : {}),
    ...(given.has("cacheL2") ? { l2: config.cacheL2 } : {}),
    ...(sentinels.length > 0 ? { l2Sentinels: sentinels } : {}),
    ...(given.has("cacheL2Master") ? { l2MasterName: config.cacheL2Master } : {}),
    ...(given.has("cacheL2TtlMs") ? { l2TtlMs: config.cacheL2TtlMs } : {}),
    ...(given.has("cacheL2TimeoutMs") ? { l2TimeoutMs: config.cacheL2TimeoutMs } : {}),
    ...(given.has("cacheFeed") ? { feed: config.cacheFeed } : {}),
    ...(feedSentinels.length > 0 ? { feedSentinels } : {}),
    ...(given.has("cacheFeedMaster") ? { feedMasterName: config.cacheFeedMaster } : {}),
  };
}

/**
 * The change feed over the topology's first shard by name (the lowest, as
 * strings compare), reached as the shard is: through its Sentinels and
 * master name, else at its fixed primary. By name, not by place in the file:
 * a rule that needs no state, that every pod agrees on whatever order its
 * file lists the shards in (first in the file, a pod started on a reordered
 * file ran it elsewhere, and the two heard nothing of each other with both
 * feeds connected), and that changes only with the set of names, which
 * changes the ring: every pod must then be reloaded (until then it is
 * unready: placementProblem), and the reload moves the feed (feedFollows).
 */
function feedOnShard(shards: readonly ShardSpec[]): FeedSettings {
  const shard = shards.reduce((a, b) => (b.name < a.name ? b : a));
  const where = shard.kind === "sentinel" ? { sentinels: shard.sentinels, masterName: shard.masterName } : { address: shard.primary };
  return { where, source: "shard", shard: shard.name };
}

/**
 * Where the feed must run after a reload to `next`, when it runs on the first
 * shard and that is another one now (removed, renamed, or one named lower
 * added); else undefined. A pod started on the new file runs it there: one that stayed on
 * the old shard heard none of those pods' writes, and nothing showed it
 * (connected, no gap) until that shard's server was retired, after which it
 * heard no pod at all until restarted.
 */
function feedFollows(place: FeedSettings | undefined, next: Topology): FeedSettings | undefined {
  if (place?.source !== "shard") return undefined;
  const now = feedOnShard(next.shards);
  // By name: a reload refuses a shard whose addresses changed (shard-set.ts), and may list its Sentinels in another order.
  return now.source === "shard" && now.shard === place.shard ? undefined : now;
}

/**
 * The change feed and the cache tier. The feed runs over Redis, shared by
 * the pods of the site, wherever the settings put it (resolveCacheSettings:
 * --cache-feed, the L2's Redis, the topology's first shard); otherwise,
 * with the embedded store or --cache-feed off, it is in-process.
 */
async function openCaches(
  settings: CacheSettings,
  store: KvNode,
  podId: string,
  metrics: MetricsRegistry,
  clock: () => number,
  refreshGatherMs: number,
  sharedFills?: () => boolean,
): Promise<{ feed: ChangeFeed; cache: CacheTier | undefined; moveFeed?: (where: FeedAddress) => void }> {
  let feed: ChangeFeed = new LocalChangeFeed(podId);
  let moveFeed: ((where: FeedAddress) => void) | undefined;
  let l2: L2Tier | undefined;
  // Start degraded rather than not at all: the feed and L2 reconnect by themselves.
  const connecting: Promise<boolean>[] = [];
  if (settings.feed) {
    // Loaded only with a shared feed: the embedded default does not carry the Redis client.
    const { RedisChangeFeed } = await import("./feed/redis-feed.ts");
    const lag = metrics.histogram("quiver_cache_invalidation_lag_seconds", "Change event published by another pod → applied here.").labels();
    const redisFeed = new RedisChangeFeed(podId, { where: settings.feed.where, onLag: (s) => lag.observe(s) });
    connecting.push(redisFeed.whenSubscribed(2000));
    feed = redisFeed;
    moveFeed = (where) => redisFeed.moveTo(where);
    metrics.gauge("quiver_feed_connected", "1 while the change feed's Redis (/readyz: feed.runsOn) is reachable and this pod is subscribed; 0: L1 fills live --cache-feed-down-ttl.", () => [
      { value: feed.state().connected ? 1 : 0 },
    ]);
  }
  if (settings.l2) {
    const { L2Store } = await import("./cache/l2-store.ts");
    const l2Store = new L2Store(settings.l2);
    connecting.push(l2Store.whenReady(2000));
    l2 = l2Store;
  }
  await Promise.all(connecting);
  // Gaps expire L1 and send the claim index to a catch-up scan: counted wherever either follows the feed.
  if (settings.feed || settings.l1 || l2) metrics.gauge("quiver_feed_gaps", "Change-feed gaps (lost link or messages); each expired L1 (rows read again, kept as grace copies) and sent the claim index to a catch-up scan.", () => [{ value: feed.state().gaps }]);
  if (!settings.l1 && !l2) return { feed, cache: undefined, ...(moveFeed ? { moveFeed } : {}) };
  // Loaded only with a cache tier (L1 is off by default on the embedded store, src/cache/cache-config.ts): the tier,
  // lru-cache and their helpers are ~1k code cells, and every young collection walks all the code a process holds.
  const { CacheTier, L1Cache, cacheMetrics } = await import("./cache/index.ts");
  const m = cacheMetrics(metrics);
  const l1 = settings.l1 ? new L1Cache({ ...settings.l1, clock, onEvict: () => m.l1Evictions.inc() }) : undefined;
  const feedDownTtlMs = settings.l1?.feedDownTtlMs;
  const cache = new CacheTier(store, {
    ...(l1 ? { l1 } : {}),
    ...(l2 ? { l2 } : {}),
    feed,
    metrics: m,
    clock,
    refreshGatherMs,
    ...(feedDownTtlMs === undefined ? {} : { feedDownTtlMs }),
    ...(sharedFills === undefined ? {} : { sharedFills }),
  });
  metrics.gauge("quiver_cache_bytes", "Bytes held by each cache tier and its budget (L1: estimated; L2: the server's INFO, refreshed every 5 s).", () => [
    ...(l1
      ? [
          { labels: { tier: "l1", kind: "used" }, value: l1.bytes },
          { labels: { tier: "l1", kind: "budget" }, value: l1.maxBytes },
        ]
      : []),
    ...(l2
      ? [
          { labels: { tier: "l2", kind: "used" }, value: l2.stats().usedBytes },
          { labels: { tier: "l2", kind: "budget" }, value: l2.stats().maxBytes },
        ]
      : []),
  ]);
  if (l1) metrics.gauge("quiver_cache_entries", "Entries held by L1.", () => [{ labels: { tier: "l1" }, value: l1.size }]);
  if (l2) {
    metrics.gauge("quiver_cache_l2_connected", "1 while the L2 Redis is reachable.", () => [{ value: l2.state().connected ? 1 : 0 }]);
    metrics.gauge("quiver_cache_l2_evicted_keys", "Keys the L2 server evicted under maxmemory (INFO evicted_keys, server total).", () => [{ value: l2.stats().evictedKeys }]);
    metrics.gauge("quiver_cache_l2_unreadable_entries", "L2 entries this pod read that were not rows (another program's keys, torn writes): each served from the origin as a miss.", () => [{ value: l2.stats().unreadableEntries }]);
  }
  return { feed, cache, ...(moveFeed ? { moveFeed } : {}) };
}

/**
 * A durable node that gave up reopening its file after its SQLite thread was
 * lost: unready, unlike a shared origin's outage. The file is this pod's own
 * (no other pod's readiness hangs on it, so failing it cannot take every pod
 * out at once), and the pod refuses its share of every write until restarted.
 * Reopening (seconds: 100 ms doubling to 5 s, 10 attempts) keeps the pod ready.
 */
function durableProblem(durable: readonly DurableKvNode[] = []): string | undefined {
  for (const node of durable) {
    if (node.state === "failed") return `the durable store ${node.id} (${node.file}) lost its SQLite thread and could not reopen its file: its writes are refused until the server restarts`;
  }
  return undefined;
}

/** Parts whose loss slows the pod without making it unready (the origin still answers). */
function degradedParts(cache: CacheTier | undefined, feed: ChangeFeed): string[] {
  const out: string[] = [];
  const l2 = cache?.state().l2;
  if (l2 !== undefined && l2 !== "off" && !l2.connected) out.push("cache-l2");
  if (!feed.state().connected) out.push("change-feed");
  return out;
}

function describeCaches(s: CacheSettings): string {
  const l1 = s.l1 ? `L1 ${Math.round(s.l1.maxBytes / 1048576)} MB ttl ${s.l1.ttlMs / 1000}s` : "L1 off";
  const l2 = s.l2 ? `L2 ${describeAddress(s.l2.where)}` : "L2 off";
  // An in-process feed hears no other pod: L1 keeps other writers' rows for its whole TTL (README, Caching).
  const feed = s.feed ? `change feed on ${describeFeed(s.feed)}` : s.l1 ? `change feed in-process: other pods' writes show here after up to the L1 TTL (${s.l1.ttlMs / 1000}s)` : "change feed in-process";
  return `caches: ${l1}, ${l2}, ${feed}`;
}

/** Where the change feed runs, for the start-up line, /readyz (`feed.runsOn`) and the metric's help. */
function describeFeed(feed: FeedSettings | undefined): string {
  if (feed === undefined) return "in-process";
  const where = describeAddress(feed.where);
  return feed.source === "shard" ? `shard ${feed.shard} (${where})` : feed.source === "l2" ? `the L2 (${where})` : where;
}

function describeAddress(where: { readonly address: string } | { readonly masterName: string }): string {
  return "address" in where ? where.address : `sentinel ${where.masterName}`;
}

async function openStorage(config: QuiverConfig, observer: ResilienceObserver, stall: StallJudge, reopen: ReopenOptions): Promise<Storage> {
  if (config.topologyPath) {
    // Loaded only when serving from Redis: the embedded default does not carry the Redis client.
    const { connectShards, loadTopology } = await import("./shard/index.ts");
    const topology = await loadTopology(config.topologyPath);
    // Only what the operator set: the file's own defaults and per-shard values stay in force otherwise.
    const overrides = {
      ...(config.explicit.has("readFrom") ? { readFrom: config.readFrom } : {}),
      ...(config.explicit.has("writeAcks") ? { writeAcks: config.writeAcks } : {}),
    };
    const shards = await connectShards(topology, overrides, { observer, stall });
    return { members: shards.members, shards, ledger: shards, cacheFile: topology.cache, shardFeed: feedOnShard(topology.shards), describe: `redis shards: ${shards.members.map((m) => m.id).join(", ")} (${config.topologyPath})` };
  }
  // Loaded only with --data-dir: the durable node, which opens the runtime's SQLite (runtime/sqlite.ts).
  const DurableKvNode = config.dataDir ? (await import("./kv/durable-node.ts")).DurableKvNode : undefined;
  if (config.dataDir) checkNodeFiles(config.dataDir);
  const members: ShardMember[] = [];
  const embedded: { id: string; node: MemoryReporting }[] = [];
  const durable: DurableKvNode[] = [];
  for (let i = 0; i < config.embeddedNodes; i++) {
    const id = `embedded-${i}`;
    const file = DurableKvNode ? await DurableKvNode.open(id, `${config.dataDir}/${id}.sqlite`, { sync: config.durability, reopen }) : undefined;
    if (file) durable.push(file);
    const node = file ?? new ArenaKvNode(id);
    members.push({ id, weight: 1, node });
    embedded.push({ id, node });
  }
  const where = config.dataDir ? `durable in ${config.dataDir}` : "memory only";
  const ledger = config.dataDir ? (await import("./kv/file-layout-ledger.ts")).FileLayoutLedger.open(config.dataDir) : new MapLayoutLedger();
  return { members, embedded, durable, ledger, describe: `embedded store: ${config.embeddedNodes} nodes, ${where}` };
}

/**
 * How long a move waits, its ring switched and recorded, before it moves keys:
 * writes routed by the old ring in this process finish (500 ms), and other
 * servers have read the record once (`--placement-check-interval`) and stopped
 * writing through their old ring, which would leave a row behind a moved key.
 */
function moveDrainMs(config: Pick<QuiverConfig, "placementCheckMs">): number {
  return config.placementCheckMs > 0 ? Math.max(500, config.placementCheckMs + 500) : 500;
}

/** Checkpoint of a running migration, so a restart resumes it: `--migration-checkpoint`, else beside the topology file. */
export function migrationCheckpointPath(config: Pick<QuiverConfig, "topologyPath" | "migrationCheckpoint">): string {
  return config.migrationCheckpoint !== "" ? config.migrationCheckpoint : `${config.topologyPath}.migration.json`;
}

/** Admin operations on the shard topology for the HTTP edge. */
function topologyAdmin(config: QuiverConfig, shards: ConnectedShards, store: ShardedStore, reloaded: (next: Topology) => void): TopologyAdmin {
  return {
    reload: async () => {
      const { loadTopology } = await import("./shard/index.ts");
      const next = await loadTopology(config.topologyPath);
      const migration = await shards.reconfigure(next, store, { checkpointPath: migrationCheckpointPath(config), drainMs: moveDrainMs(config) });
      reloaded(next);
      return { migrating: migration !== undefined, shards: shards.members.map((m) => m.id) };
    },
    progress: () => shards.migration?.progress(),
  };
}

function registerGauges(metrics: MetricsRegistry, registry: RegistryHolder, store: ShardedStore, embedded: Storage["embedded"] = []): void {
  metrics.gauge("quiver_registry_loaded_timestamp_seconds", "When the live registry was loaded.", () => [
    { labels: { digest: registry.current.digest }, value: registry.current.loadedAt / 1000 },
  ]);
  metrics.gauge("quiver_ring_share", "Fraction of the hash space each storage node owns.", () =>
    [...store.ring.shares()].map(([node, share]) => ({ labels: { node }, value: share })),
  );
  const arenas = () => embedded.map((m) => ({ node: m.id, stats: m.node.memoryStats() }));
  metrics.gauge("quiver_embedded_keys", "Keys held by each embedded node.", () => arenas().map((a) => ({ labels: { node: a.node }, value: a.stats.keys })));
  metrics.gauge("quiver_embedded_bytes", "Embedded node memory by kind: live and dead row bytes, hash table.", () =>
    arenas().flatMap((a) => [
      { labels: { node: a.node, kind: "live" }, value: a.stats.liveBytes },
      { labels: { node: a.node, kind: "dead" }, value: a.stats.deadBytes },
      { labels: { node: a.node, kind: "table" }, value: a.stats.tableBytes },
    ]),
  );
  metrics.gauge("quiver_process_resident_memory_bytes", "Resident set size of the server.", () => [{ value: process.memoryUsage.rss() }]);
}

function registerDurableGauges(metrics: MetricsRegistry, durable: readonly DurableKvNode[] = []): void {
  if (durable.length === 0) return;
  const states = ["open", "reopening", "failed"] as const;
  metrics.gauge("quiver_embedded_file_state", "1 for each durable node's file state: open, reopening (its SQLite thread was lost), failed (gave up reopening: /readyz fails, writes refused until restart).", () =>
    durable.flatMap((n) => states.map((state) => ({ labels: { node: n.id, state }, value: n.state === state ? 1 : 0 }))),
  );
  metrics.gauge("quiver_embedded_file_reopens", "Times each durable node's file was reopened on a new SQLite thread after its thread was lost, since start.", () =>
    durable.map((n) => ({ labels: { node: n.id }, value: n.reopenCount })),
  );
}

/** Young collections paced while busy (runtime/young-gc-pacer.ts), where the runtime lets us call one. */
async function startYoungGcPacer(config: QuiverConfig, admission: AdaptiveAdmission, metrics: MetricsRegistry): Promise<YoungGcPacer | undefined> {
  if (config.youngGcIntervalMs === 0) return undefined;
  const gc = await loadYoungGc();
  if (gc === undefined) return undefined;
  const paced = metrics.counter("quiver_young_gc_paced_total", "Young-generation collections run by the pacer (--young-gc-interval-ms) while busy.").labels();
  const paused = metrics.counter("quiver_young_gc_paced_pause_seconds_total", "Event-loop time spent in those collections.").labels();
  const onCollected = (pauseMs: number): void => {
    paced.inc();
    paused.inc(pauseMs / 1000);
  };
  return new YoungGcPacer(gc, () => admission.admittedCount, { intervalMs: config.youngGcIntervalMs, minRequests: config.youngGcMinRequests, minHeapBytes: config.youngGcMinHeapMb * 1024 * 1024, onCollected }).start();
}

function registerAdmissionGauges(metrics: MetricsRegistry, admission: AdaptiveAdmission, health: HealthMonitor): void {
  metrics.gauge("quiver_health_score", "Pod health from 0 (unusable) to 100 (idle): in-flight, queue, CPU, memory, error rate and p99 (see /readyz for the factors).", () => [
    { value: health.report.score },
  ]);
  metrics.gauge("quiver_inflight_requests", "Lookups and pushes in flight now.", () => [{ value: admission.snapshot().inFlight }]);
  metrics.gauge("quiver_request_p99_seconds", "p99 service time of lookups and pushes over the last health interval (1 s).", () => [{ value: health.report.p99Ms / 1000 }]);
  metrics.gauge("quiver_admission_cpu_overloaded", "1 while the event loop is overloaded and requests that waited in it beyond --overload-delay-ms get 503.", () => [{ value: admission.snapshot().cpuOverloaded ? 1 : 0 }]);
  metrics.gauge("quiver_admission_turn_budget_seconds", "How long each event-loop turn serves requests while CPU overload is shed: learnt between --overload-turn-ms and --overload-turn-max-ms.", () => [{ value: admission.snapshot().turnBudgetMs / 1000 }]);
  metrics.gauge("quiver_event_loop_turn_seconds", "Length of the last event-loop turn that served requests: the longest a request in it waited for the loop.", () => [{ value: admission.snapshot().loopTurnMs / 1000 }]);
  metrics.gauge("quiver_admission_limit", "Current concurrency limit (adaptive unless --max-concurrency is set).", () => [{ value: admission.snapshot().limit }]);
  metrics.gauge("quiver_admission_queued", "Requests waiting for a slot.", () => [{ value: admission.snapshot().queued }]);
  metrics.gauge("quiver_admission_queue_standing_wait_seconds", "How long a request may wait for a slot while the admission queue stands: learnt between --admission-queue-standing-wait-ms and --admission-queue-standing-wait-max-ms.", () => [{ value: admission.snapshot().standingWaitMs / 1000 }]);
  metrics.gauge("quiver_admission_queue_standing", "1 while the admission queue stands (sustained overload): newest requests served first, waits cut at the standing wait (quiver_admission_queue_standing_wait_seconds).", () => [
    { value: admission.snapshot().queueStanding ? 1 : 0 },
  ]);
}

function registerAnomalyGauges(metrics: MetricsRegistry, anomalies: AnomalyBuffer): void {
  metrics.gauge("quiver_anomaly_buffer_entries", "Entries in the anomaly buffer (GET /admin/anomalies).", () => [{ value: anomalies.length }]);
  metrics.gauge("quiver_anomaly_buffer_evictions", "Anomaly entries evicted since start, by reason: capacity (buffer full) or ttl (expired).", () => [
    { labels: { reason: "capacity" }, value: anomalies.evictions.capacity },
    { labels: { reason: "ttl" }, value: anomalies.evictions.ttl },
  ]);
}
