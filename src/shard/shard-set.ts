import { existsSync } from "node:fs";
import { failedPrecondition, invalid, invalidArgument, unavailable } from "../errors/index.ts";
import type { KvNode } from "../kv/kv-node.ts";
import type { LayoutLedger, LayoutMismatch, LedgerOutcome, ViewLayout } from "../kv/layout-ledger.ts";
import type { StallJudge } from "../resilience/index.ts";
import { guardShard, IGNORE_OBSERVER, type ResilienceObserver, type ResilientShard, type ShardGuardState } from "../resilience/shards.ts";
import type { ShardedStore } from "../store/sharded-store.ts";
import { ensureCheckpointWritable, readCheckpoint } from "./migration-checkpoint.ts";
import { ringOf } from "../ring/signature.ts";
import { judgePlacement, type PlacementRecord, parsePlacement, placementProblem, ringSignature } from "./placement.ts";
import { Migration, type MigrationMember } from "./rebalance.ts";
import type { ReplicaSet, ReplicaSetStats } from "./replica-set.ts";
import type { ShardSpec, ShardTuning, Topology } from "./topology.ts";

/** A shard as the ring sees it; structurally the sharded store's `ShardMember`. */
export interface ConnectedShard {
  readonly id: string;
  readonly weight: number;
  readonly node: KvNode;
}

/** One shard's stats for /readyz and /metrics. */
export interface ShardStats extends ReplicaSetStats {
  readonly weight: number;
  /** False for a removed shard still being emptied by a migration. */
  readonly inRing: boolean;
}

export interface ReconfigureOptions {
  /** Where the migration checkpoints (resume after a restart needs it). */
  readonly checkpointPath?: string;
  readonly pageSize?: number;
  readonly drainMs?: number;
}

/** What `connectShards` returns; the lead's wiring hands `members` to the ring. Each shard keeps the layout ledger beside its rows. */
export interface ConnectedShards extends LayoutLedger {
  /** Current ring members, in topology order. */
  readonly members: ConnectedShard[];
  /** The latest migration (running, paused, failed or done), for progress in /metrics and the CLI. */
  readonly migration: Migration | undefined;
  stats(): ShardStats[];
  /** Breaker states of every connected shard. */
  guardStates(): ShardGuardState[];
  /** Topology reload: connects added shards and starts moving keys; undefined when the ring does not change. */
  reconfigure(next: Topology, store: ShardedStore, options?: ReconfigureOptions): Promise<Migration | undefined>;
  /** At start-up: resumes a migration a restart interrupted (checkpoint present); undefined when there is none. */
  resume(store: ShardedStore, checkpointPath: string): Promise<Migration | undefined>;
  /**
   * At start-up, in place of `resume`: resumes an interrupted migration, else
   * compares this topology's ring with the placement the shards record
   * (shard/placement.ts) and records it, refuses (QuiverError
   * `placement_mismatch`), or with `migrateOnStart` starts moving the keys.
   */
  settlePlacement(store: ShardedStore, checkpointPath: string, migrateOnStart: boolean, options?: ReconfigureOptions): Promise<Migration | undefined>;
  /**
   * Reads the placement record every `intervalMs` (from the first shard that
   * answers): another server's topology change shows in `placementProblem`
   * (readiness fails on it). Answers the stop.
   */
  watchPlacement(store: ShardedStore, intervalMs: number): () => void;
  /** Why this server must not serve (its ring is not where the keys are), or undefined. */
  readonly placementProblem: string | undefined;
  /** Resolves when the running migration (if any) has finished or stopped. */
  settled(): Promise<void>;
  /**
   * Pauses the running migration (if any) once its page in flight is whole,
   * checkpointed for the next start, and resolves when it has stopped: a
   * shutdown calls it while the shards are still open.
   */
  pauseMigration(): Promise<void>;
  /** Closes every shard (pausing a running migration first, as `pauseMigration`). */
  close(): Promise<void>;
}

type Connect = (specs: readonly ShardSpec[], defaults: ShardTuning) => Promise<ReplicaSet[]>;

/** Kept with the checkpoint: how to reach the old shards after a restart. */
interface MigrationMeta {
  readonly from: readonly ShardSpec[];
  readonly defaults: ShardTuning;
}

const connectionOf = (s: ShardSpec): string => (s.kind === "sentinel" ? `${s.masterName}@${[...s.sentinels].sort()}` : `${s.primary}/${[...s.replicas].sort()}`);

/**
 * The connected shards of a topology and its changes over time: a reload
 * connects new shards, migrates keys while serving, and closes removed
 * shards once they are empty.
 */
export class ShardSet implements ConnectedShards {
  private topology: Topology;
  private readonly sets = new Map<string, ReplicaSet>();
  /** Each shard behind its policies: what the ring and migrations use. */
  private readonly guards = new Map<string, ResilientShard>();
  private readonly observer: ResilienceObserver;
  private current: MigrationMember[];
  private readonly connect: Connect;
  private active: Migration | undefined;
  /** Ring members the data may still live on until the active migration is done. */
  private pendingFrom: { members: MigrationMember[]; specs: readonly ShardSpec[]; defaults: ShardTuning } | undefined;
  private running: Promise<void> = Promise.resolve();
  /** A reload is connecting its shards (reconfigure). */
  private reconfiguring = false;
  /** Stops the running migration (close): it pauses, checkpointed, rather than trying its pages again on closed shards. */
  private stopMigration: AbortController | undefined;
  /** Why this server must not serve, from the last placement check (watchPlacement), or undefined. */
  private problem: string | undefined;
  private checkingPlacement = false;

  constructor(
    topology: Topology,
    sets: readonly ReplicaSet[],
    connect: Connect,
    observer: ResilienceObserver = IGNORE_OBSERVER,
    private readonly stall?: StallJudge,
  ) {
    this.topology = topology;
    this.connect = connect;
    this.observer = observer;
    for (const s of sets) this.add(s);
    this.current = topology.shards.map((spec) => ({ id: spec.name, weight: spec.weight, node: this.guards.get(spec.name)! }));
  }

  private add(set: ReplicaSet): void {
    this.sets.set(set.id, set);
    this.guards.set(set.id, guardShard(set, set.tuning, this.observer, undefined, this.stall));
  }

  /**
   * The ledger on every connected shard's primary (each holds a share of every
   * view's rows): checked on all first, recorded only when none conflicts. The
   * record pass reports conflicts too (another pod recorded a layout between
   * this one's passes): those refuse the registry as well. A shard a topology
   * reload adds is given the ledger before any key moves (reconfigure).
   */
  async reconcile(layouts: readonly ViewLayout[]): Promise<LedgerOutcome> {
    const unreachable = new Set<string>();
    const onEach = async (mode: "check" | "record"): Promise<LayoutMismatch[]> => {
      const mismatches: LayoutMismatch[] = [];
      for (const r of await this.onEveryShard((set) => set.reconcileLayouts(layouts, mode))) {
        if (r.failure !== undefined) unreachable.add(`${r.id} (${r.failure})`);
        else for (const m of r.value!) mismatches.push({ ...m, where: `shard ${r.id} at ${m.where}` });
      }
      return mismatches;
    };
    const mismatches = await onEach("check");
    // Two pods reloading different layouts at once both passed their check; the second's record conflicted on the
    // shard and was ignored, and the pods read one stored column as two different features (PRESENT).
    if (mismatches.length === 0) mismatches.push(...(await onEach("record")));
    return { mismatches, unreachable: [...unreachable] };
  }

  /** `call` on every connected shard at once: each shard's answer, or why it gave none (its callers log or report it). */
  private async onEveryShard<T>(call: (set: ReplicaSet) => Promise<T>): Promise<Array<{ readonly id: string; readonly value?: T; readonly failure?: string }>> {
    const sets = [...this.sets.values()];
    const settled = await Promise.allSettled(sets.map(call));
    return settled.map((r, i) =>
      r.status === "fulfilled" ? { id: sets[i]!.id, value: r.value } : { id: sets[i]!.id, failure: r.reason instanceof Error ? r.reason.message : String(r.reason) },
    );
  }

  guardStates(): ShardGuardState[] {
    return [...this.guards.values()].map((g) => g.guardState());
  }

  get members(): ConnectedShard[] {
    return this.current;
  }

  get migration(): Migration | undefined {
    return this.active;
  }

  stats(): ShardStats[] {
    const weights = new Map(this.current.map((m) => [m.id, m.weight]));
    return [...this.sets.values()].map((s) => ({ ...s.stats(), weight: weights.get(s.id) ?? 0, inRing: weights.has(s.id) }));
  }

  async reconfigure(next: Topology, store: ShardedStore, options: ReconfigureOptions = {}): Promise<Migration | undefined> {
    // One reload at a time: a second one arriving while the first connects its new shards would pass the check
    // below too, and two migrations would move keys over one store.
    if (this.reconfiguring) throw failedPrecondition("reload_in_progress", "a topology reload is connecting its shards; wait for it to finish");
    this.reconfiguring = true;
    try {
      return await this.reconfigureNow(next, store, options);
    } finally {
      this.reconfiguring = false;
    }
  }

  private async reconfigureNow(next: Topology, store: ShardedStore, options: ReconfigureOptions): Promise<Migration | undefined> {
    if (this.active?.progress().state === "running") throw failedPrecondition("migration_in_progress", "a migration is running; wait for it to finish");
    next.shards.forEach((spec, i) => {
      const old = this.topology.shards.find((s) => s.name === spec.name) ?? this.pendingFrom?.specs.find((s) => s.name === spec.name);
      if (old && connectionOf(old) !== connectionOf(spec)) {
        throw invalid("invalid_topology", `shards[${i}]`, `shard "${spec.name}" changed addresses; that needs a restart, not a reload`);
      }
    });
    const to = next.shards.map((s) => ({ id: s.name, weight: s.weight }));
    if (this.pendingFrom && ringOf(to) !== ringOf(this.current)) {
      throw failedPrecondition("migration_in_progress", `the migration to [${ringOf(this.current)}] has not finished; reload that topology again to resume it`);
    }
    if (ringOf(this.pendingFrom?.members ?? this.current) !== ringOf(to)) ensureCheckpointWritable(options.checkpointPath);
    const added = next.shards.filter((s) => !this.sets.has(s.name));
    const connected = await this.connect(added, next.defaults);
    try {
      await this.copyLedger(connected);
    } catch (e) {
      await Promise.all(connected.map((s) => s.close()));
      throw e;
    }
    for (const set of connected) this.add(set);
    const from = this.pendingFrom ?? { members: this.current, specs: this.topology.shards, defaults: this.topology.defaults };
    this.topology = next;
    this.current = next.shards.map((s) => ({ id: s.name, weight: s.weight, node: this.guards.get(s.name)! }));
    if (ringOf(from.members) === ringOf(this.current)) return undefined;
    return this.start(store, from, options);
  }

  /**
   * Gives shards a reload adds the layout ledger the others hold, before any
   * key moves there: it was never copied, so once the old shards were retired
   * a registry with two features swapped was accepted and every moved row
   * read back with their values swapped, PRESENT.
   */
  private async copyLedger(added: readonly ReplicaSet[]): Promise<void> {
    if (added.length === 0) return;
    const held = await this.onEveryShard((set) => set.readLayouts());
    const ledgers = held.filter((r) => r.value !== undefined).map((r) => r.value!);
    if (ledgers.length === 0 && held.length > 0) {
      throw unavailable(`no shard answered for its layout ledger (${held.map((r) => `${r.id}: ${r.failure}`).join("; ")}); the new shards cannot be given it`);
    }
    for (const set of added) {
      for (const layouts of ledgers) {
        const conflicts = await set.reconcileLayouts(layouts, "record");
        if (conflicts.length > 0) {
          throw failedPrecondition("incompatible_registry", `shard ${set.id} holds layouts that conflict with the other shards' (${conflicts.map((c) => c.field).join(", ")}): its rows were written under another registry`);
        }
      }
    }
  }

  async resume(store: ShardedStore, checkpointPath: string): Promise<Migration | undefined> {
    const saved = readCheckpoint(checkpointPath);
    if (saved === undefined && existsSync(checkpointPath)) {
      // Until 12-08 an unreadable checkpoint was taken for none: the start was refused as a move "stopped without its
      // checkpoint", or --migrate-on-start began the move again and wrote over the file, its cause never named.
      throw failedPrecondition(
        "checkpoint_unreadable",
        `${checkpointPath}: the migration checkpoint cannot be read (cut short, or not a checkpoint of this version); nothing was changed. ` +
          "Move it aside and start with --migrate-on-start on (one server): the move starts over from the beginning, which is safe (copies are last-write-wins, the source deletes only rows not newer than the copy)",
      );
    }
    const meta = saved?.meta as MigrationMeta | undefined;
    if (!saved || !meta?.from) return undefined;
    if (!saved.plan.endsWith(`-> ${this.current.map((m) => `${m.id}:${m.weight}`).join(",")}`)) {
      throw invalidArgument("invalid_topology", `${checkpointPath}: an interrupted migration (${saved.plan}) does not end at this topology; start with its target topology or delete the checkpoint`);
    }
    const missing = meta.from.filter((s) => !this.sets.has(s.name));
    for (const set of await this.connect(missing, meta.defaults)) this.add(set);
    const members = meta.from.map((s) => ({ id: s.name, weight: s.weight, node: this.guards.get(s.name)! }));
    return this.start(store, { members, specs: meta.from, defaults: meta.defaults }, { checkpointPath });
  }

  async settlePlacement(store: ShardedStore, checkpointPath: string, migrateOnStart: boolean, options: ReconfigureOptions = {}): Promise<Migration | undefined> {
    const resumed = await this.resume(store, checkpointPath);
    if (resumed) return resumed;
    const vnodes = store.ring.vnodesPerNode;
    const ring = ringSignature(vnodes, this.current);
    const records: PlacementRecord[] = [];
    for (const r of await this.onEveryShard((set) => set.readPlacement())) {
      if (r.failure !== undefined) console.error(`quiver: placement not checked on shard ${r.id} (${r.failure}); it is recorded at the next start`);
      else if (r.value !== null) {
        const record = parsePlacement(r.value!);
        if (record) records.push(record);
        else console.error(`quiver: shard ${r.id} holds an unreadable placement record; replacing it`);
      }
    }
    const verdict = judgePlacement(records, ring, migrateOnStart);
    if (verdict.kind === "refuse") throw failedPrecondition("placement_mismatch", verdict.reason);
    if (verdict.kind === "record") {
      await this.recordPlacement({ ring, shards: this.topology.shards, defaults: this.topology.defaults });
      return undefined;
    }
    const from = verdict.from;
    ensureCheckpointWritable(checkpointPath);
    console.error(`quiver: moving the keys from [${from.ring}] to [${ring}] (--migrate-on-start)`);
    const missing = from.shards.filter((spec) => !this.sets.has(spec.name));
    for (const set of await this.connect(missing, from.defaults)) this.add(set);
    const members = from.shards.map((spec) => ({ id: spec.name, weight: spec.weight, node: this.guards.get(spec.name)! }));
    return this.start(store, { members, specs: from.shards, defaults: from.defaults }, { ...options, checkpointPath });
  }

  get placementProblem(): string | undefined {
    return this.problem;
  }

  watchPlacement(store: ShardedStore, intervalMs: number): () => void {
    const timer = setInterval(() => void this.checkPlacement(store), intervalMs);
    timer.unref?.();
    return () => clearInterval(timer);
  }

  private async checkPlacement(store: ShardedStore): Promise<void> {
    if (this.checkingPlacement) return;
    this.checkingPlacement = true;
    try {
      let record: PlacementRecord | undefined;
      let answered = false;
      for (const member of this.current) {
        try {
          const text = await this.sets.get(member.id)?.readPlacement();
          record = text === null || text === undefined ? undefined : parsePlacement(text);
          answered = true;
          break;
        } catch {
          // Unreachable: ask the next shard; none answering leaves the last verdict standing.
        }
      }
      if (!answered) return;
      const ring = ringSignature(store.ring.vnodesPerNode, this.current);
      // A migration this server ran or runs moves the keys to its own ring (this.current).
      const problem = record === undefined ? undefined : placementProblem(record, ring, this.active !== undefined);
      if (problem !== this.problem) console.error(problem === undefined ? "quiver: the shards' placement matches this server's ring again" : `quiver: not ready: ${problem}`);
      this.problem = problem;
    } finally {
      this.checkingPlacement = false;
    }
  }

  /** Writes `record` on every connected shard; a shard that cannot take it is logged (a start or migration goes on). */
  private async recordPlacement(record: PlacementRecord): Promise<void> {
    const text = JSON.stringify(record);
    for (const r of await this.onEveryShard((set) => set.writePlacement(text))) {
      if (r.failure !== undefined) console.error(`quiver: placement not recorded on shard ${r.id} (${r.failure})`);
    }
  }

  /**
   * A move's record on every shard before any key moves, retried (every
   * second, until `signal` aborts) while a shard cannot take it: a server
   * whose placement check read a shard left with the old record stayed ready
   * and went on writing through the old ring after the keys had moved — an
   * audit lost the last two acknowledged pushes of 229 keys that way.
   * Answers whether it was recorded everywhere.
   */
  private async recordPlacementEverywhere(record: PlacementRecord, signal: AbortSignal): Promise<boolean> {
    const text = JSON.stringify(record);
    for (let attempt = 1; !signal.aborted; attempt++) {
      const failed = (await this.onEveryShard((set) => set.writePlacement(text))).filter((r) => r.failure !== undefined);
      if (failed.length === 0) return true;
      if (attempt === 1 || attempt % 30 === 0) {
        const where = failed.map((r) => `shard ${r.id} (${r.failure})`).join(", ");
        console.error(
          record.movingTo !== undefined
            ? `quiver: the move waits: placement not recorded on ${where}; no key moves until every shard holds it`
            : `quiver: the move is done, but its end is not recorded on ${where} yet (tried again every second): until it is, a server starting on that shard's record is refused`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
    return false;
  }

  settled(): Promise<void> {
    return this.running;
  }

  pauseMigration(): Promise<void> {
    this.stopMigration?.abort();
    return this.running;
  }

  async close(): Promise<void> {
    this.stopMigration?.abort();
    await Promise.all([...this.sets.values()].map((s) => s.close()));
    this.sets.clear();
    this.guards.clear();
  }

  /** Runs the migration in the background; removed shards are closed once it is done. */
  private start(store: ShardedStore, from: NonNullable<ShardSet["pendingFrom"]>, options: ReconfigureOptions): Migration {
    const meta: MigrationMeta = { from: from.specs, defaults: from.defaults };
    const migration = new Migration({ store, from: from.members, to: this.current, meta, ...options });
    this.active = migration;
    this.pendingFrom = from;
    // The last move may still be writing its end record (retried while a shard cannot take it): it stops, and is
    // waited for, before this move's record goes out, or its next write would replace this move's record with the
    // last one's settled ring, and a server started on the old topology would be accepted while keys move.
    this.stopMigration?.abort();
    const previous = this.running;
    const stop = new AbortController();
    this.stopMigration = stop;
    // Recorded on every shard (the old ones and the new) first: a server started meanwhile on either topology is refused.
    const vnodes = store.ring.vnodesPerNode;
    const target = { ring: ringSignature(vnodes, this.current), shards: this.topology.shards, defaults: this.topology.defaults };
    const moving = { ring: ringSignature(vnodes, from.members), shards: from.specs, defaults: from.defaults, movingTo: target.ring };
    this.running = previous
      .catch(() => undefined)
      .then(() => this.recordPlacementEverywhere(moving, stop.signal))
      .then(() => migration.run(stop.signal))
      .then(
        async (p) => {
          // Paused (pauseMigration, close): its checkpoint resumes it at the next start or reload.
          if (p.state !== "done") return;
          this.pendingFrom = undefined;
          const keep = new Set(this.current.map((m) => m.id));
          const retired = [...this.sets.values()].filter((s) => !keep.has(s.id));
          for (const s of retired) {
            this.sets.delete(s.id);
            this.guards.delete(s.id);
          }
          // Removed shards hold no keys now: their record goes too, so one reused in a later topology starts clean.
          const retire = async (s: ReplicaSet) => {
            await s.clearPlacement().catch(() => undefined);
            await s.close();
          };
          // The target's record on every shard, retried while one cannot take it (until close): a shard that missed it
          // kept the move's record, and every later start was refused as "being moved" (and a server reading that shard
          // first turned unready) until someone ran the whole move again with --migrate-on-start.
          await Promise.all([this.recordPlacementEverywhere(target, stop.signal), ...retired.map(retire)]);
        },
        () => {
          // Failed: progress() says why; the old shards stay connected so a reload of the same topology resumes.
        },
      );
    return migration;
  }
}
