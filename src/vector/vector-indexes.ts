import { invalid } from "../errors/index.ts";
import type { ChangeEvent, ChangeFeed, ChangeListener, InvalidationScope } from "../feed/index.ts";
import type { KvNode, ReadContext, ReadSlot } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { SCAN_RESTARTS, scanPasses } from "../kv/scan-passes.ts";
import type { HistogramHandle, MetricsRegistry } from "../ops/metrics.ts";
import type { CompiledView, Registry } from "../registry/index.ts";
import { retryPatiently } from "../resilience/patient-retry.ts";
import { createEmbedder, type EmbedderOptions } from "./embedders.ts";
import type { SnapshotStore } from "./snapshot.ts";
import { ViewIndex } from "./view-index.ts";

export interface VectorIndexesOptions {
  /** The origin store (not a cache): rows are re-read from it to get the vector of a change. */
  readonly store: KvNode;
  readonly feed: ChangeFeed;
  readonly metrics: MetricsRegistry;
  /** Present with `--data-dir`: snapshots are read at start and written periodically and on close. */
  readonly snapshots?: SnapshotStore;
  /** How often changed indexes are snapshotted (ms); 0 = only on close. */
  readonly snapshotIntervalMs: number;
  /**
   * How often every index catches up with the store (ms); 0 = only after a
   * gap or an invalidation. For a store other processes write without a
   * shared feed (Redis shards, no L2): their writes are never heard.
   */
  readonly catchUpIntervalMs?: number;
  readonly embedders: EmbedderOptions;
  readonly clock?: () => number;
  /**
   * False while a read of the store may answer an older row than an earlier
   * read did with no write lost (a migration: ShardedStore.migrating). Rows
   * read then are never taken over a newer indexed one. Taken, a catch-up
   * during a move followed the copy of a key at its new owner back from the
   * newer row an old-ring writer had put at the source, and kept the older
   * vector after the migration copied the newer row unheard (95 of 95 keys,
   * test/vector-migration.test.ts). Absent: always settled.
   */
  readonly readsSettled?: () => boolean;
}

/** Why a catch-up scan runs: a feed gap, an invalidation, or --vector-catch-up-interval (no shared feed). */
type CatchUpReason = "gap" | "invalidation" | "interval";

/** Per indexed view: the serving index, changes waiting to be applied, and a rebuild in progress. */
/** A background rebuild: the new index's shape, its view's key prefix, and the keys that changed while it was built. */
interface RebuildJob {
  readonly shape: string;
  readonly prefix: string;
  readonly pending: Set<string>;
  cancelled: boolean;
  /** A gap or an invalidation came while it ran: what it read may predate what the feed lost, so it scans again before it swaps in. */
  rescan: boolean;
}

interface ViewState {
  vi: ViewIndex;
  /** False until the first build (or snapshot catch-up) finished: a half-built index is not served. */
  ready: boolean;
  /** Storage keys whose change is not applied yet → when the event arrived (performance.now ms). */
  readonly pending: Map<string, number>;
  /** Keys applied from the feed while a catch-up scan runs, which the scan must not overwrite. */
  touched: Set<string> | undefined;
  /**
   * Scans begun on this view, and rebuilt indexes swapped in: a drain whose read no scan and no swap
   * overlapped read the freshest row (see drainBatch).
   */
  scans: number;
  /** A background rebuild: the new index's shape and the keys that changed while it was built. */
  rebuild: RebuildJob | undefined;
  /** `vi.version` at the last snapshot. */
  snapshotVersion: number;
  writing: Promise<void> | undefined;
  /** A snapshot of the view under way (its index file written, its digest and manifest maybe still being). */
  snapshotting?: Promise<void> | undefined;
  /** The catch-up running (or waiting to try again) for this view: one at a time, as two would share `touched`. */
  catchingUp: Promise<void> | undefined;
  /** A gap or an invalidation came while it ran: one more pass once it is done. */
  catchUpAgain: boolean;
}

const PAGE = 256;
/**
 * Index maintenance reads the primary: a change heard on the feed re-read from
 * a replica that had not applied it yet got the old row (or none), and the
 * claim stayed out of the index until the next gap (9 of 40 acknowledged
 * pushes indexed with readFrom replica and a replica 150 ms behind).
 */
const FROM_PRIMARY: ReadContext = { fromPrimary: true };
/** Changes re-read per store call by drain(). */
const DRAIN_BATCH = 1000;
/**
 * Longest stretch of index work (HNSW inserts) in one turn of the event loop,
 * under the 5 ms turn CPU-overload shedding counts as overloaded
 * (--overload-delay-ms). An insert into a 384-d HNSW graph takes 0.3-1 ms: a
 * drain batch of 1,000 new claims held the loop for 338 ms (3,000 indexed), a
 * rebuild's page of 256 for 110-480 ms, and lookups waited that long.
 */
const SLICE_MS = 4;
/** Rounds of re-reading the keys that changed during a rebuild's scan before it swaps in (the drain takes the rest). */
const REBUILD_REREADS = 3;
/** Pause before a drain re-reads rows its last pass could not read (their shard down). */
const DRAIN_RETRY_MS = 250;

/**
 * Every indexed view's vector index, kept current from the change feed.
 * Built at start from a scan of the store (or loaded from a snapshot and
 * caught up by the same scan), then each acknowledged write — from this pod
 * or, over a shared feed, from others — is re-read from the store and
 * applied. A gap in the feed or an invalidation triggers a catch-up scan; a
 * registry change that reshapes an index rebuilds it in the background
 * while the old one keeps serving.
 */
export class VectorIndexes implements ChangeListener {
  private readonly states = new Map<string, ViewState>();
  private readonly byPrefix = new Map<string, ViewState>();
  /**
   * Rebuilds for another key prefix than their view serves (a version bump):
   * changes under the new prefix go to the job alone. Routed by the old
   * prefix only, the new version's writes during the scan were never read
   * (460 of 1,000 acknowledged claims left out of the index).
   */
  private readonly rebuildsByPrefix = new Map<string, RebuildJob>();
  private readonly clock: () => number;
  /** The registry last given to start() or reconfigure(): what a retried first build reads its view from. */
  private registry: Registry | undefined;
  /** Views whose first build runs or waits to try again: one per view, whatever reloads come meanwhile. */
  private readonly building = new Set<string>();
  private readonly tasks = new Set<Promise<unknown>>();
  private unsubscribe: (() => void) | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private catchUpTimer: ReturnType<typeof setInterval> | undefined;
  private connectWatch: ReturnType<typeof setInterval> | undefined;
  private draining: Promise<void> | undefined;
  /** Ends the pause before a drain that waits to re-read unreadable rows. */
  private wakeDrain: (() => void) | undefined;
  private closed = false;
  private readonly buildSeconds;
  private readonly snapshotSeconds;
  private readonly lag = new Map<string, HistogramHandle>();
  private readonly lagHistogram;
  private readonly applied;
  private readonly retried;
  /** Aborted by close(): background work that waits to try again stops waiting. */
  private readonly stopping = new AbortController();

  constructor(private readonly o: VectorIndexesOptions) {
    this.clock = o.clock ?? Date.now;
    const m = o.metrics;
    this.buildSeconds = m.histogram("quiver_vector_build_duration_seconds", "Vector index builds: full builds, catch-up scans (after a snapshot or a feed gap, an invalidation, or every --vector-catch-up-interval without a shared feed) and background rebuilds.", ["view", "kind"], SLOW_BUCKETS);
    this.snapshotSeconds = m.histogram("quiver_vector_snapshot_duration_seconds", "Time to write a vector index snapshot.", ["view"], SLOW_BUCKETS);
    this.lagHistogram = m.histogram("quiver_vector_feed_lag_seconds", "From a change arriving on the feed to the vector index reflecting it.", ["view"]);
    this.applied = m.counter("quiver_vector_changes_applied_total", "Rows applied to vector indexes by outcome.", ["view", "outcome"]);
    this.retried = m.counter(
      "quiver_vector_task_retries_total",
      "Background index work tried again after it failed or found rows it could not read (a shard down): builds, catch-ups, rebuilds; task scan_restart: a scan started again from the start because a shard's primary became another process.",
      ["view", "task"],
    );
    m.gauge("quiver_vector_index_size", "Live vectors per indexed view.", () => [...this.states].map(([view, s]) => ({ labels: { view }, value: s.vi.size })));
    m.gauge("quiver_vector_index_deleted_ratio", "Share of index slots that are deleted and waiting for reuse.", () =>
      [...this.states].map(([view, s]) => ({ labels: { view }, value: s.vi.deletedRatio })),
    );
    m.gauge("quiver_vector_feed_pending", "Changes received from the feed and not yet applied.", () => [...this.states].map(([view, s]) => ({ labels: { view }, value: s.pending.size })));
  }

  /** Loads or builds every index the registry declares, then follows the feed. */
  async start(registry: Registry): Promise<void> {
    this.unsubscribe = this.o.feed.subscribe(this);
    this.registry = registry;
    for (const view of registry.views.values()) {
      if (!view.index) continue;
      try {
        await this.open(view);
      } catch (e) {
        // A shard down at start must not keep the server from starting (lookups answer its keys' defaults,
        // flagged): the view is served once a build gets through, matches answer 503 meanwhile.
        this.retried.labels(view.name, "build").inc();
        console.error(`quiver: vector index ${view.name}: build failed at start (${(e as Error).message}); starting without it, trying again`);
        this.track(this.build(view.name));
      }
    }
    if (!this.o.feed.state().connected) this.catchUpOnceConnected();
    const every = this.o.catchUpIntervalMs ?? 0;
    if (every > 0) {
      this.catchUpTimer = setInterval(() => {
        // One running (a gap's, or the last interval's that met a shard down) covers this one.
        for (const s of this.states.values()) if (s.ready && s.catchingUp === undefined) this.track(this.catchUp(s, "interval"));
      }, every);
      this.catchUpTimer.unref?.();
    }
    if (this.o.snapshots && this.o.snapshotIntervalMs > 0) {
      this.timer = setInterval(() => this.track(this.snapshotAll()), this.o.snapshotIntervalMs);
      this.timer.unref?.();
    }
  }

  /** The serving index of a view, or undefined when it has none (yet). */
  get(view: string): ViewIndex | undefined {
    const s = this.states.get(view);
    return s?.ready ? s.vi : undefined;
  }

  /**
   * Refuses a registry whose indexes could not be followed (an embedder this
   * server cannot make), before anything changes: reconfigure threw after the
   * registry was swapped, so a reload answered 500 with the new registry live
   * and the streaming writers still on the old mappings.
   */
  checkEmbedders(registry: Registry): void {
    let i = 0;
    for (const view of registry.views.values()) {
      const at = i++;
      if (!view.index?.embedder) continue;
      try {
        createEmbedder(view, this.o.embedders);
      } catch (e) {
        throw invalid("invalid_registry", `featureViews[${at}].index.embedder`, (e as Error).message);
      }
    }
  }

  /**
   * Follows a registry reload: new indexes are built and reshaped ones rebuilt
   * in the background (the old index serves meanwhile), dropped ones go at
   * once, and search-time settings (efSearch, embedder) apply immediately.
   */
  reconfigure(registry: Registry): void {
    this.registry = registry;
    for (const [name, s] of this.states) {
      const view = registry.views.get(name);
      if (!view?.index) this.drop(name, s);
    }
    for (const view of registry.views.values()) {
      if (!view.index) continue;
      const s = this.states.get(view.name);
      if (!s) {
        // Tried again until the store answers: a view added while a shard is down gets its index once it is back.
        if (!this.building.has(view.name)) this.track(this.build(view.name));
        continue;
      }
      const shape = ViewIndex.shapeOf(view, view.index);
      if (shape === s.vi.shape) {
        // Back to the serving shape (a reload rolled back while its rebuild ran): the rebuild must not swap in.
        // It did, and matching answered 503 "being rebuilt" for good.
        if (s.rebuild) this.cancelRebuild(s);
        s.vi.spec = view.index;
        s.vi.embedder = createEmbedder(view, this.o.embedders);
        continue;
      }
      if (s.rebuild?.shape === shape) continue;
      if (s.rebuild) this.cancelRebuild(s);
      this.track(this.rebuild(view, s, shape));
    }
  }

  // ChangeListener: synchronous, cheap; the work happens in drain().
  onChanges(events: readonly ChangeEvent[]): void {
    if (this.byPrefix.size === 0) return;
    const now = performance.now();
    let any = false;
    for (const e of events) {
      const slash = e.key.indexOf("/");
      const prefix = e.key.slice(0, slash + 1);
      const s = this.byPrefix.get(prefix);
      if (!s) {
        this.rebuildsByPrefix.get(prefix)?.pending.add(e.key);
        continue;
      }
      if (!s.pending.has(e.key)) s.pending.set(e.key, now);
      any = true;
    }
    if (any) this.scheduleDrain();
  }

  onInvalidate(scope: InvalidationScope): void {
    for (const [name, s] of this.states) {
      if (!("all" in scope) && scope.view !== name) continue;
      if (s.rebuild) s.rebuild.rescan = true;
      this.track(this.catchUp(s, "invalidation"));
    }
  }

  onGap(reason: string): void {
    console.error(`quiver: change feed gap (${reason}); vector indexes catch up from the store`);
    for (const s of this.states.values()) {
      if (s.rebuild) s.rebuild.rescan = true;
      this.track(this.catchUp(s, "gap"));
    }
  }

  /**
   * A shared feed that was not yet subscribed when the indexes were built
   * loses what other pods wrote meanwhile, and its first subscription is not
   * reported as a gap: catch up once it connects.
   */
  private catchUpOnceConnected(): void {
    this.connectWatch = setInterval(() => {
      if (this.closed || !this.o.feed.state().connected) return;
      clearInterval(this.connectWatch);
      this.connectWatch = undefined;
      for (const s of this.states.values()) {
        if (s.rebuild) s.rebuild.rescan = true;
        this.track(this.catchUp(s, "gap"));
      }
    }, 100);
    this.connectWatch.unref?.();
  }

  /** Stops following the feed, lets running work finish and writes a final snapshot. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    if (this.catchUpTimer) clearInterval(this.catchUpTimer);
    if (this.connectWatch) clearInterval(this.connectWatch);
    await this.idle();
    await this.snapshotAll();
  }

  /** Resolves when no change is pending and no build, catch-up or snapshot runs (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      if (this.draining) await this.draining;
      else if (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
      // Closed, drain applies nothing (it stops at `closed`): changes still pending then are left (the store has them;
      // the next start rebuilds from it). Looping on them spun forever and the process never exited.
      else if (!this.closed && [...this.states.values()].some((s) => s.pending.size > 0)) await this.drain();
      else return;
    }
  }

  /** Writes a snapshot of every index changed since its last one. */
  async snapshotAll(): Promise<void> {
    const store = this.o.snapshots;
    if (!store) return;
    for (const [name, s] of this.states) {
      // One snapshot of a view at a time: a second one's generation would drop the first's file under its manifest.
      if (s.snapshotting) await s.snapshotting;
      if (s.vi.version === s.snapshotVersion || s.writing) continue;
      let done = () => {};
      s.snapshotting = new Promise<void>((resolve) => {
        done = resolve;
      });
      const vi = s.vi;
      const version = vi.version;
      const start = performance.now();
      // The index is held unchanged only while its file is written; the file's digest and the manifest come after.
      const indexWritten = store.writeIndex(vi, this.clock());
      s.writing = indexWritten.then(
        () => undefined,
        () => undefined,
      );
      try {
        const finish = await indexWritten;
        s.writing = undefined;
        await finish();
        // Only if it is still the serving index: a rebuild that swapped in meanwhile has its own version count, and
        // taking the old one's (equal when both hold the same rows) skipped its snapshot.
        if (s.vi === vi) s.snapshotVersion = version;
        this.snapshotSeconds.labels(name).observe((performance.now() - start) / 1000);
      } catch (e) {
        console.error(`quiver: vector snapshot of ${name} failed: ${(e as Error).message}`);
      } finally {
        s.writing = undefined;
        s.snapshotting = undefined;
        done();
      }
    }
  }

  /**
   * A view's first build, tried again until the store answers. Each try reads
   * the view from the registry of that moment: retried with the definition of
   * the first try, a reload meanwhile was lost (a version bump left matching
   * at 503 for good, a metric change was ignored, an index taken out came back).
   */
  private build(name: string): Promise<void> {
    this.building.add(name);
    return this.untilDone(name, "build", async () => {
      const view = this.registry?.views.get(name);
      if (!view?.index || this.states.has(name)) return; // taken out of the registry meanwhile, or built
      await this.open(view);
    }).finally(() => this.building.delete(name));
  }

  /** Builds (or loads and catches up) a view's index and serves it; on failure it leaves no state behind. */
  private async open(view: CompiledView): Promise<void> {
    const spec = view.index!;
    const embedder = createEmbedder(view, this.o.embedders);
    const start = performance.now();
    const loaded = await this.o.snapshots?.read(view, spec, embedder);
    const vi = loaded ?? ViewIndex.empty(view, spec, embedder);
    const s: ViewState = { vi, ready: false, pending: new Map(), touched: undefined, scans: 0, rebuild: undefined, snapshotVersion: vi.version, writing: undefined, catchingUp: undefined, catchUpAgain: false };
    // Follow the feed from now on: changes during the scan are applied and protected from it.
    this.states.set(view.name, s);
    this.byPrefix.set(view.keyPrefix, s);
    // The build's scan counts as the view's catch-up: a gap meanwhile asks for one more pass, not a second scan beside it.
    const scan = this.scanInto(s, vi);
    s.catchingUp = scan.then(
      () => undefined,
      () => undefined,
    );
    let unread: number;
    try {
      unread = await scan;
    } catch (e) {
      // Not served half-built; the next try (build()) starts over from the registry of its time.
      if (this.states.get(view.name) === s) this.drop(view.name, s);
      throw e;
    } finally {
      s.catchingUp = undefined;
    }
    s.ready = true;
    if (!loaded) s.snapshotVersion = -1;
    this.buildSeconds.labels(view.name, loaded ? "catch_up" : "build").observe((performance.now() - start) / 1000);
    // Served as built; rows whose shard did not answer, and what a gap during the build missed, come in with a catch-up.
    if (unread > 0 || s.catchUpAgain) this.track(this.catchUp(s, "gap"));
  }

  private cancelRebuild(s: ViewState): void {
    const job = s.rebuild;
    if (!job) return;
    job.cancelled = true;
    if (this.rebuildsByPrefix.get(job.prefix) === job) this.rebuildsByPrefix.delete(job.prefix);
    s.rebuild = undefined;
  }

  private drop(name: string, s: ViewState): void {
    if (s.rebuild) this.cancelRebuild(s);
    this.states.delete(name);
    this.byPrefix.delete(s.vi.view.keyPrefix);
  }

  /**
   * Reconciles the serving index with the store (after a gap or an
   * invalidation), tried again until a scan has read every row: a catch-up
   * that met a shard down would otherwise leave what the gap missed out of
   * the index until the next gap.
   */
  private catchUp(s: ViewState, why: CatchUpReason): Promise<void> {
    if (s.catchingUp !== undefined) {
      s.catchUpAgain = true;
      return s.catchingUp;
    }
    const run = (async () => {
      try {
        do {
          s.catchUpAgain = false;
          await this.catchUpOnce(s, why);
        } while (s.catchUpAgain && !this.closed);
      } finally {
        s.catchingUp = undefined;
      }
    })();
    s.catchingUp = run;
    return run;
  }

  private async catchUpOnce(s: ViewState, why: CatchUpReason): Promise<void> {
    const name = s.vi.view.name;
    const start = performance.now();
    await this.untilDone(name, why === "invalidation" ? "invalidation" : "catch_up", async () => {
      if (this.states.get(name) !== s) return; // dropped meanwhile
      const unread = await this.scanInto(s, s.vi);
      if (unread > 0) throw new Error(`${unread} rows could not be read (their shard did not answer)`);
    });
    this.buildSeconds.labels(name, why === "gap" ? "catch_up" : why).observe((performance.now() - start) / 1000);
  }

  /** Runs background index work until it succeeds or the indexes close, waiting between tries (250 ms, doubling to 30 s). */
  private untilDone(view: string, task: string, fn: () => Promise<void>): Promise<void> {
    return retryPatiently(fn, {
      retries: Number.POSITIVE_INFINITY,
      initialDelayMs: 250,
      maxDelayMs: 30_000,
      signal: this.stopping.signal,
      onRetry: (e, ms) => {
        this.retried.labels(view, task).inc();
        console.error(`quiver: vector index ${view}: ${task} failed (${(e as Error).message}); trying again in ${Math.round(ms)} ms`);
      },
    });
  }

  /** Builds a new index for a reshaped view while the old one serves, then swaps. */
  private async rebuild(view: CompiledView, s: ViewState, shape: string): Promise<void> {
    const start = performance.now();
    const job: RebuildJob = { shape, prefix: view.keyPrefix, pending: new Set<string>(), cancelled: false, rescan: false };
    s.rebuild = job;
    if (job.prefix !== s.vi.view.keyPrefix) this.rebuildsByPrefix.set(job.prefix, job);
    const next = ViewIndex.empty(view, view.index!, createEmbedder(view, this.o.embedders));
    // The old index serves until the new one has read every row. A gap or an invalidation meanwhile was caught
    // up into the old index only, and the new one swapped in without what the feed lost: one more scan then.
    do {
      job.rescan = false;
      await this.untilDone(view.name, "rebuild", async () => {
        if (job.cancelled) return;
        const unread = await this.scanInto(undefined, next, () => job.cancelled);
        if (unread > 0 && !job.cancelled) throw new Error(`${unread} rows could not be read (their shard did not answer)`);
      });
      // Keys that changed during the scan: re-read a few rounds while the old index serves, then swap in and leave
      // what is still pending to the drain. Re-read "until none is left", a rebuild never swapped in under steady
      // writes (each round's read outlasted the next write: a version bump answered 503 for as long as a writer
      // wrote, 1,000 writes/s and 3 ms reads), and a key whose re-read found its shard down was dropped for good.
      for (let round = 0; round < REBUILD_REREADS && job.pending.size > 0 && !job.cancelled; round++) {
        if (!(await this.rereadInto(next, job.pending, view.name))) break;
      }
    } while (job.rescan && !job.cancelled && !this.closed);
    if (this.rebuildsByPrefix.get(job.prefix) === job) this.rebuildsByPrefix.delete(job.prefix);
    if (job.cancelled || this.states.get(view.name) !== s) return;
    this.byPrefix.delete(s.vi.view.keyPrefix);
    s.vi = next;
    s.scans++;
    s.rebuild = undefined;
    s.snapshotVersion = -1;
    this.byPrefix.set(view.keyPrefix, s);
    // Changed since their last read (or not readable then): the new serving index's drain re-reads them, as any change.
    if (job.pending.size > 0) {
      const now = performance.now();
      for (const key of job.pending) if (!s.pending.has(key)) s.pending.set(key, now);
      job.pending.clear();
      this.scheduleDrain();
    }
    this.buildSeconds.labels(view.name, "rebuild").observe((performance.now() - start) / 1000);
  }

  /**
   * One round of a rebuild's re-reads: takes the keys out of `pending` and
   * applies their current rows to `next`; keys storage could not answer for
   * go back into `pending`. False when some did (no use trying again at once).
   */
  private async rereadInto(next: ViewIndex, pending: Set<string>, name: string): Promise<boolean> {
    const keys = [...pending];
    pending.clear();
    let rows: ReadSlot[];
    try {
      rows = await this.o.store.getMany(keys, FROM_PRIMARY);
    } catch {
      for (const key of keys) pending.add(key);
      return false;
    }
    let now = this.clock();
    let slice = performance.now();
    let readAll = true;
    for (let i = 0; i < keys.length; i++) {
      if (performance.now() - slice > SLICE_MS) {
        await this.nextTurn(undefined);
        now = this.clock();
        slice = performance.now();
      }
      const key = keys[i]!;
      try {
        if (applySlot(next, key, rows[i], now) === "unavailable") {
          pending.add(key);
          readAll = false;
        }
      } catch (e) {
        // As drainBatch: thrown out of the rebuild, it was never swapped in (matching answered 503 for good after a version bump).
        console.error(`quiver: vector index ${name}: applying ${key} to the rebuilt index failed (${(e as Error).message}); left out of the index`);
      }
    }
    return readAll;
  }

  /**
   * Scans the view's keys and applies each current row to `vi`; keys `vi`
   * holds that the store no longer has are removed. When `s` is given (the
   * serving index), keys the feed applied meanwhile are fresher and skipped.
   * Answers how many rows could not be read (UNAVAILABLE: left as they were).
   *
   * A scan whose shard's primary became another process (a failover, a
   * restart) is started again from the start (scanPasses; after SCAN_RESTARTS
   * in a row it fails as a shard down does, and the caller tries it again
   * later): the rows its aborted pass applied are current and stay, but only
   * a pass that ran from start to end without a restart says which keys the
   * store no longer has. A cursor carried over to the new process skipped keys
   * silently, and removing "unseen" keys then took live rows out of matching
   * until the next scan.
   */
  private async scanInto(s: ViewState | undefined, vi: ViewIndex, cancelled: () => boolean = () => false): Promise<number> {
    const touched = new Set<string>();
    if (s) {
      s.touched = touched;
      s.scans++;
    }
    const prefix = vi.view.keyPrefix;
    const name = vi.view.name;
    try {
      // One whole pass: the keys it saw, or undefined when cancelled.
      const pass = async (): Promise<{ seen: Set<string>; unread: number } | undefined> => {
        const seen = new Set<string>();
        let unread = 0;
        let cursor = "0";
        do {
          const page = await this.o.store.scan(cursor, PAGE, prefix);
          cursor = page.cursor;
          if (page.keys.length === 0) continue;
          // Current (taken even when older than the indexed row) only if the store's reads were settled as it read.
          const settled = this.settled();
          const rows = await this.o.store.getMany(page.keys, FROM_PRIMARY);
          // An in-memory store answers at once (a resolved promise): without a turn of the event
          // loop per page, a background rebuild would hold off every request until it is done.
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (cancelled()) return undefined;
          if (s?.writing) await s.writing;
          let now = this.clock();
          let slice = performance.now();
          for (let i = 0; i < page.keys.length; i++) {
            if (performance.now() - slice > SLICE_MS) {
              await this.nextTurn(s);
              if (cancelled()) return undefined;
              now = this.clock();
              slice = performance.now();
            }
            const key = page.keys[i]!;
            seen.add(key);
            if (touched.has(key)) continue;
            // Current: an apply since this read (the feed's) marked the key touched, skipped above.
            if (applySlot(vi, key, rows[i], now, settled) === "unavailable") unread++;
          }
        } while (cursor !== "0");
        return { seen, unread };
      };
      const done = await scanPasses(pass, (e, restart) => {
        this.retried.labels(name, "scan_restart").inc();
        console.error(`quiver: vector index ${name}: scanning again from the start (restart ${restart} of ${SCAN_RESTARTS}): ${e.message}`);
      });
      if (done === undefined || cancelled()) return done?.unread ?? 0;
      // The last page may have been empty, and so not waited for a snapshot writing the index (as SCAN may answer).
      if (s?.writing) await s.writing;
      const gone: string[] = [];
      for (const key of vi.labels.liveKeys()) if (!done.seen.has(key) && !touched.has(key)) gone.push(key);
      const now = this.clock();
      for (const key of gone) vi.apply(key, undefined, now);
      return done.unread;
    } finally {
      if (s && s.touched === touched) s.touched = undefined;
    }
  }

  /**
   * Runs drain() on the next loop turn, or after `delayMs` when the last pass
   * left changes it could not read (their shard down). A change arriving
   * during such a wait cuts it short: the other views' changes are not held.
   */
  private scheduleDrain(delayMs = 0): void {
    if (this.closed) return;
    if (this.draining) {
      if (delayMs === 0) this.wakeDrain?.();
      return;
    }
    this.draining = new Promise<void>((resolve) => {
      if (delayMs === 0) {
        setImmediate(resolve);
        return;
      }
      const timer = setTimeout(resolve, delayMs);
      this.wakeDrain = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.wakeDrain = undefined;
      return this.drain();
    });
  }

  /**
   * Applies pending changes: re-reads their rows from the store, one pass per
   * view over the keys pending when the pass starts, in bounded batches. Keys
   * that could not be read stay pending for the next drain, which comes after
   * a pause: retried in place, one unreadable key of a view kept every view
   * after it from getting changes for as long as its shard was down.
   */
  private async drain(): Promise<void> {
    let unread = false;
    try {
      for (const [name, s] of this.states) {
        if (this.closed) break;
        const pass = [...s.pending];
        for (let at = 0; at < pass.length && !this.closed; at += DRAIN_BATCH) {
          if (!(await this.drainBatch(name, s, pass.slice(at, at + DRAIN_BATCH)))) unread = true;
        }
      }
    } finally {
      this.draining = undefined;
      if (!this.closed && [...this.states.values()].some((s) => s.pending.size > 0)) this.scheduleDrain(unread ? DRAIN_RETRY_MS : 0);
    }
  }

  /** One batch of a view's pending changes; false when some rows could not be read (kept pending). */
  private async drainBatch(name: string, s: ViewState, batch: readonly (readonly [string, number])[]): Promise<boolean> {
    const keys: string[] = [];
    const arrived: number[] = [];
    const prefix = s.vi.view.keyPrefix;
    for (const [key, at] of batch) {
      // Arrived again since the pass began: still pending, with its first arrival.
      if (s.pending.get(key) !== at) continue;
      s.pending.delete(key);
      // The previous version's change, pending when a version bump's index swapped in: not a row of this index.
      if (!key.startsWith(prefix)) continue;
      keys.push(key);
      arrived.push(at);
    }
    if (keys.length === 0) return true;
    // The catch-up scan running as the rows are read, if any: only its reads can be older than these.
    const scanAtRead = s.touched;
    const scansAtRead = s.scans;
    const settled = this.settled();
    let rows: ReadSlot[];
    try {
      rows = await this.o.store.getMany(keys, FROM_PRIMARY);
    } catch (e) {
      // Storage is down: keep the keys and retry shortly (a catch-up would need the store too).
      for (let i = 0; i < keys.length; i++) if (!s.pending.has(keys[i]!)) s.pending.set(keys[i]!, arrived[i]!);
      console.error(`quiver: vector index ${name}: cannot re-read changed rows (${(e as Error).message}); retrying`);
      return false;
    }
    if (s.writing) await s.writing;
    let now = this.clock();
    let done = performance.now();
    let lag = this.lag.get(name);
    if (!lag) {
      lag = this.lagHistogram.labels(name);
      this.lag.set(name, lag);
    }
    let unavailable = 0;
    for (let i = 0; i < keys.length; i++) {
      if (performance.now() - done > SLICE_MS) {
        await this.nextTurn(s);
        now = this.clock();
        done = performance.now();
      }
      const key = keys[i]!;
      const slot = rows[i];
      if (slot === UNAVAILABLE) {
        // Its shard could not answer: keep the change and re-read it in the next drain.
        if (!s.pending.has(key)) s.pending.set(key, arrived[i]!);
        unavailable++;
        continue;
      }
      // Kept from the scan only if it began before this read. One begun since (a gap's, during the read or a turn the
      // batch let pass) reads every key after this batch did; marked anyway, it skipped them: a write the gap lost
      // stayed out of the index, and a row deleted meanwhile stayed matched, until the key changed again.
      if (s.touched === scanAtRead) scanAtRead?.add(key);
      // Only a rebuild of the same keys (a reshape, not a version bump: the old version's rows are not its).
      if (s.rebuild?.prefix === s.vi.view.keyPrefix) s.rebuild.pending.add(key);
      // No scan ran and no index swapped in since the read: every apply before this one read earlier (drains run one at
      // a time), so this row is the store's current one, taken even when older than the indexed one (the store lost a
      // write). Read as "the same or newer" only, a late event written after a failover lost a newer one was never
      // indexed: the lost vector stayed matched until the next gap.
      const current = settled && scanAtRead === undefined && s.touched === undefined && s.scans === scansAtRead;
      let outcome: string;
      try {
        outcome = s.vi.apply(key, slot, now, current);
      } catch (e) {
        // Thrown out of drain(), it rejected the drain (idle() with it, or an unhandled rejection) and the rest of
        // the batch, already taken from pending, was never applied. The row stays in the store for a catch-up.
        outcome = "error";
        console.error(`quiver: vector index ${name}: applying ${key} failed (${(e as Error).message}); left out of the index`);
      }
      this.applied.labels(name, outcome).inc();
      lag.observe((done - arrived[i]!) / 1000);
    }
    if (unavailable > 0) this.applied.labels(name, "unavailable").inc(unavailable);
    return unavailable === 0;
  }

  /** Whether the store's reads are settled now (VectorIndexesOptions.readsSettled). */
  private settled(): boolean {
    return this.o.readsSettled?.() ?? true;
  }

  /** Lets the event loop turn (requests waiting for it are served), then waits out a snapshot of `s`'s index begun meanwhile. */
  private async nextTurn(s: ViewState | undefined): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (s?.writing) await s.writing;
  }

  private track(p: Promise<unknown>): void {
    // Work that close() stopped waiting to try again ends with its last failure: not news at shutdown.
    const t = p.catch((e) => this.closed || console.error(`quiver: vector index task failed: ${(e as Error).message}`)).finally(() => this.tasks.delete(t));
    this.tasks.add(t);
  }
}

/** Applies a read slot; an unavailable row is left as it is (the next change or catch-up fixes it). `current`: see ViewIndex.apply. */
function applySlot(vi: ViewIndex, key: string, slot: ReadSlot | undefined, now: number, current = false): string {
  if (slot === UNAVAILABLE) return "unavailable";
  return vi.apply(key, slot, now, current);
}

const SLOW_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
