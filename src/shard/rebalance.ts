import { ringKeyStart } from "../kv/keys.ts";
import type { KvEntry, KvNode, PrimaryAccess, ServerProcess } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { pause } from "../kv/storage-errors.ts";
import { retryPatiently } from "../resilience/patient-retry.ts";
import { HashRing } from "../ring/ring.ts";
import type { ShardedStore } from "../store/sharded-store.ts";
import { type Checkpoint, clearCheckpoint, emptyCounters, loadCheckpoint, type MigrationCounters, type SourceCursor, saveCheckpoint } from "./migration-checkpoint.ts";
import { ReadThroughNode } from "./read-through-node.ts";

/** A ring member on either side of a migration: a shard, read and deleted from on its primary. */
export interface MigrationMember {
  readonly id: string;
  readonly weight: number;
  readonly node: KvNode & PrimaryAccess;
}

export interface MigrationOptions {
  /** The serving store: it routes by the new ring (reads falling through to old owners) while keys move. */
  readonly store: ShardedStore;
  readonly from: readonly MigrationMember[];
  readonly to: readonly MigrationMember[];
  /** Saved after every page; a new Migration with the same plan resumes from it. */
  readonly checkpointPath?: string;
  /** Keys per SCAN page and per copy batch (default 500). */
  readonly pageSize?: number;
  /** Wait after switching the ring so writes routed by the old ring finish (default 500 ms). */
  readonly drainMs?: number;
  /** Saved with the checkpoint as is (see readCheckpoint). */
  readonly meta?: unknown;
  /**
   * Times a page (its scan and its move) is tried again after a failure
   * before the migration fails (default 10): a shard's timeout or failover, or
   * this process stalled past a call's timeout, is not worth an operator's
   * reload. With the default back-off the tries span 34–46 s, longer than
   * a shard's breaker stays open (30 s by default) once a shard outage has
   * opened it. Moving a page again is safe: copies are last-write-wins and
   * the source deletes only what is not newer than the copy.
   */
  readonly pageRetries?: number;
  /** First wait before a page is tried again (ms, default 250), doubling up to 10 s, with jitter. */
  readonly retryDelayMs?: number;
  /**
   * Times one source's scan may start again from 0 in one run (its primary
   * became another process: a failover, a restart) before the migration fails
   * (default 10), resumable by reloading the same topology once the shard is
   * stable. Unbounded, a source failing over at every pass kept the migration
   * `running` for ever, its old shards never retired.
   */
  readonly maxRescans?: number;
}

export interface MigrationProgress extends MigrationCounters {
  readonly state: "pending" | "running" | "paused" | "done" | "failed";
  readonly from: readonly string[];
  readonly to: readonly string[];
  /** Keys in the source shards when the migration started (DBSIZE), when known. */
  readonly totalKeys: number | null;
  /** 0..1; scanned / total while running. */
  readonly fraction: number;
  /** movedKeys / totalKeys (scannedKeys when the total is unknown): about 1/(n+1) when adding an (n+1)th equal shard. */
  readonly movedFraction: number;
  readonly sources: Readonly<Record<string, Readonly<SourceCursor>>>;
  readonly error: string | null;
}

const MAX_ROUNDS = 5;

/** The same redis-server process: same address and `run_id` (a restart on the same address has a new one). Unknown is never the same. */
const sameProcess = (a: ServerProcess | undefined, b: ServerProcess): boolean => a !== undefined && a.address === b.address && a.runId === b.runId;

const describeProcess = (p: ServerProcess | undefined): string => (p === undefined ? "not known (no page yet, or an older checkpoint)" : `${p.address} run_id ${p.runId.slice(0, 12)}`);

/**
 * Online rebalancing after a ring change. Only keys whose owner changed move:
 * each source shard is scanned, its moved rows are read from its primary,
 * copied to the new owner with last-write-wins (so newer writes that already
 * landed there win), verified, then deleted from the source with a
 * compare-and-delete (a row that got newer meanwhile is copied again).
 * Progress is checkpointed per page; an interrupted run resumes. Each scan
 * cursor is tied to the source primary's process (address and `run_id`): a
 * cursor outlives neither a failover nor a restart, so a source whose primary
 * became another process is scanned again from the start (`rescans`).
 */
export class Migration {
  private readonly options: MigrationOptions;
  private readonly plan: string;
  private state: MigrationProgress["state"] = "pending";
  private counters: MigrationCounters = emptyCounters();
  private sources: Record<string, SourceCursor> = {};
  private totalKeys: number | null = null;
  private error: string | null = null;
  /** Scans started again from 0 in this run, per source (`maxRescans`). */
  private rescansThisRun = new Map<string, number>();

  constructor(options: MigrationOptions) {
    this.options = options;
    const side = (ms: readonly MigrationMember[]): string => ms.map((m) => `${m.id}:${m.weight}`).join(",");
    this.plan = `${side(options.from)} -> ${side(options.to)}`;
    const saved = loadCheckpoint(options.checkpointPath, this.plan);
    if (saved) {
      // Checkpoints written before a counter existed lack it.
      this.counters = { ...emptyCounters(), ...saved.counters };
      this.sources = structuredClone(saved.sources);
      this.totalKeys = saved.totalKeys;
    }
  }

  progress(): MigrationProgress {
    const c = this.counters;
    const fraction = this.state === "done" ? 1 : this.totalKeys ? Math.min(0.99, c.scannedKeys / this.totalKeys) : 0;
    return {
      state: this.state,
      from: this.options.from.map((m) => m.id),
      to: this.options.to.map((m) => m.id),
      ...c,
      totalKeys: this.totalKeys,
      fraction,
      movedFraction: c.movedKeys / (this.totalKeys ?? Math.max(1, c.scannedKeys)),
      sources: structuredClone(this.sources),
      error: this.error,
    };
  }

  /**
   * Switches the store to the new ring (with read-through to old owners), moves
   * every key whose owner changed, then leaves the store on the plain new ring.
   * Aborting pauses after the current page (or at once, when that page fails
   * or waits to be tried again: its shards are going away): the store stays
   * readable and a new Migration with the same checkpoint resumes.
   */
  async run(signal?: AbortSignal): Promise<MigrationProgress> {
    const { store, from, to } = this.options;
    const vnodesPerNode = store.ring.vnodesPerNode;
    const toRing = new HashRing(to, { vnodesPerNode });
    const previous = { ring: new HashRing(from, { vnodesPerNode }), nodes: from.map((m) => m.node) };
    this.state = "running";
    this.error = null;
    this.rescansThisRun.clear();
    store.setMembers(
      to.map((m, i) => ({ id: m.id, weight: m.weight, node: new ReadThroughNode(m.id, m.node, previous, (key) => toRing.ownerIndexOf(key, ringKeyStart(key)) === i) })),
    );
    try {
      this.totalKeys ??= await this.countKeys();
      // Writes this process routed by the old ring before the switch land on the old owners: wait until every one
      // has settled (a write is retried through its shard's failover window, 10 s, longer than `drainMs`), or one
      // landing after its key's page was scanned would stay on a shard nothing reads once the migration is done.
      // Not abortable, but bounded by the write policy (a shutdown drains writes in flight anyway).
      await store.writesSettled();
      await pause(this.options.drainMs ?? 500, signal);
      // Each pass over the sources ends with a check that every source still is the process its finished scan
      // ran on; one that is not (failed over or restarted after its pass) is scanned again, until none changed.
      for (;;) {
        for (const source of from) {
          const cursor = this.sources[source.id] ?? { cursor: "0", done: false, scanned: 0, moved: 0 };
          this.sources[source.id] = cursor;
          for (let page = 0; page < 100_000_000 && !cursor.done; page++) {
            if (signal?.aborted) {
              this.state = "paused";
              return this.progress();
            }
            const outcome = await this.pageWithRetries(source, cursor, toRing, signal);
            if ("otherProcess" in outcome) {
              this.restartScan(source.id, cursor, outcome.otherProcess);
            } else {
              cursor.scanned += outcome.keys;
              cursor.moved += outcome.moved;
              cursor.cursor = outcome.next;
              cursor.done = outcome.next === "0";
              cursor.process = outcome.process;
            }
            saveCheckpoint(this.options.checkpointPath, this.checkpoint());
          }
        }
        let changed = false;
        for (const source of from) {
          const cursor = this.sources[source.id]!;
          const now = await this.patiently(() => source.node.primaryProcess(), signal);
          if (sameProcess(cursor.process, now)) continue;
          this.restartScan(source.id, cursor, now);
          changed = true;
        }
        if (!changed) break;
        saveCheckpoint(this.options.checkpointPath, this.checkpoint());
      }
    } catch (error) {
      if (signal?.aborted) {
        // Stopped (a shutdown closes the shards under the page in flight): paused at the last whole page.
        this.state = "paused";
        saveCheckpoint(this.options.checkpointPath, this.checkpoint());
        return this.progress();
      }
      this.state = "failed";
      this.error = error instanceof Error ? error.message : String(error);
      saveCheckpoint(this.options.checkpointPath, this.checkpoint());
      throw error;
    }
    // Scans go on: the same nodes, unwrapped; every key is at its owner now.
    store.setMembers(to, { scansGoOn: true });
    clearCheckpoint(this.options.checkpointPath);
    this.state = "done";
    return this.progress();
  }

  /**
   * Scans and moves one page from `cursor`, tried again after a failure
   * (`pageRetries`, back-off from `retryDelayMs`); the last failure is
   * thrown. An abort ends a wait between tries at once (a try in flight
   * finishes first). A page answered by another process than the one that
   * issued the cursor (a failover or a restart since, or a checkpoint that does
   * not say) is not moved: `otherProcess` says so, and the scan starts again.
   */
  private async pageWithRetries(
    source: MigrationMember,
    cursor: Readonly<SourceCursor>,
    toRing: HashRing,
    signal: AbortSignal | undefined,
  ): Promise<{ next: string; keys: number; moved: number; process: ServerProcess } | { otherProcess: ServerProcess }> {
    // Counted over every try of the page: a try that failed after deleting keys from the source (or whose
    // delete's reply was lost) leaves them out of the next try's scan, and they moved all the same.
    const scanned = new Set<string>();
    const moved = new Set<string>();
    const outcome = await this.patiently(async (): Promise<{ next: string; process: ServerProcess } | { otherProcess: ServerProcess }> => {
      // The process is read in the same MULTI as the SCAN: this page's keys and cursor are that process's.
      const page = await source.node.scanPrimary(cursor.cursor, this.options.pageSize ?? 500);
      if (cursor.cursor !== "0" && !sameProcess(cursor.process, page.process)) return { otherProcess: page.process };
      for (const k of page.keys) scanned.add(k);
      await this.movePage(source, page.keys, toRing, moved);
      return { next: page.cursor, process: page.process };
    }, signal);
    this.counters.scannedKeys += scanned.size;
    this.counters.movedKeys += moved.size;
    return "otherProcess" in outcome ? outcome : { ...outcome, keys: scanned.size, moved: moved.size };
  }

  /**
   * Starts `source`'s scan again from 0 (its cursor belongs to a process that
   * no longer answers for the shard). Safe to redo what was done: a copy is
   * last-write-wins (a row already at the destination, or newer there, is
   * left as it is: `newerAtDestination`), and the source deletes only a row
   * not newer than what was copied and verified, so a key moved twice ends
   * up the same as once.
   */
  private restartScan(id: string, cursor: SourceCursor, now: ServerProcess): void {
    const why = `its primary is ${describeProcess(now)}; its scan so far ran on ${describeProcess(cursor.process)}`;
    const times = (this.rescansThisRun.get(id) ?? 0) + 1;
    const max = this.options.maxRescans ?? 10;
    if (times > max) {
      throw new Error(
        `migration: shard ${id}'s primary became another process ${times} times in this run (${why}): its scan started again ${max} times and cannot finish while it keeps changing; every key is still readable: reload the same topology to resume once the shard is stable`,
      );
    }
    this.rescansThisRun.set(id, times);
    cursor.cursor = "0";
    cursor.done = false;
    cursor.process = undefined;
    cursor.rescans = (cursor.rescans ?? 0) + 1;
    this.counters.rescans++;
    console.error(`quiver: migration: scanning shard ${id} again from the start (${why})`);
  }

  /** `work` with the page retries (`pageRetries`, back-off from `retryDelayMs`, abortable between tries). */
  private patiently<T>(work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return retryPatiently(work, {
      retries: this.options.pageRetries ?? 10,
      initialDelayMs: this.options.retryDelayMs ?? 250,
      maxDelayMs: 10_000,
      ...(signal !== undefined ? { signal } : {}),
      onRetry: () => {
        this.counters.retriedPages++;
      },
    });
  }

  /**
   * Moves the keys of one scan page whose new owner is not `source`, adding
   * each key it copies to `moved`. Not abortable: a page is finished once
   * started, so a pause never leaves a key copied but not yet deleted.
   */
  private async movePage(source: MigrationMember, keys: readonly string[], toRing: HashRing, moved: Set<string>): Promise<void> {
    const to = this.options.to;
    let pending = keys.filter((k) => to[toRing.ownerIndexOf(k, ringKeyStart(k))]!.id !== source.id);
    for (let round = 0; round < MAX_ROUNDS && pending.length > 0; round++) {
      const rows = await source.node.getManyPrimary(pending);
      const present: KvEntry[] = [];
      rows.forEach((row, i) => {
        if (row === UNAVAILABLE) throw new Error(`migration: source ${source.id} could not be read`);
        if (row !== undefined) present.push({ key: pending[i]!, row });
      });
      await this.copyAndVerify(present, toRing);
      if (round === 0) for (const e of present) moved.add(e.key);
      else this.counters.recopiedKeys += present.length;
      const kept = await source.node.deleteIfNotNewer(present.map((e) => ({ key: e.key, ts: e.row.ts })));
      this.counters.deletedKeys += present.length - kept.length;
      pending = kept;
    }
    if (pending.length > 0) throw new Error(`migration: ${pending.length} keys on ${source.id} kept changing; retry`);
  }

  /**
   * LWW copy to each new owner, then a read-back: every key must be there at least as new as the copy.
   * Not published on the change feed: it only fills a slot nothing was written to, or loses to a newer
   * write, since writes during the move are held against the old owner's row (ReadThroughNode.putMany).
   * It replaces a row only with one a server still writing by the old ring put at the source later: newer,
   * and published by that server like any write (test/rebalance-lww.test.ts).
   */
  private async copyAndVerify(entries: readonly KvEntry[], toRing: HashRing): Promise<void> {
    const byOwner = new Map<number, KvEntry[]>();
    for (const e of entries) {
      const owner = toRing.ownerIndexOf(e.key, ringKeyStart(e.key));
      const list = byOwner.get(owner);
      if (list) list.push(e);
      else byOwner.set(owner, [e]);
    }
    await Promise.all(
      [...byOwner].map(async ([owner, list]) => {
        const dest = this.options.to[owner]!;
        const outcome = await dest.node.putMany(list);
        this.counters.copiedRows += outcome.written;
        this.counters.newerAtDestination += outcome.ignored;
        const check = await dest.node.getManyPrimary(list.map((e) => e.key));
        check.forEach((row, i) => {
          if (row === undefined || row === UNAVAILABLE || row.ts < list[i]!.row.ts) {
            throw new Error(`migration: verify failed for ${list[i]!.key} on ${dest.id}`);
          }
        });
      }),
    );
  }

  private async countKeys(): Promise<number | null> {
    try {
      const sizes = await Promise.all(this.options.from.map((m) => m.node.size()));
      return sizes.reduce((a, b) => a + b, 0);
    } catch {
      return null;
    }
  }

  private checkpoint(): Checkpoint {
    return { version: 1, plan: this.plan, sources: this.sources, counters: this.counters, totalKeys: this.totalKeys, meta: this.options.meta };
  }
}
