import { loadSqlite, SQLITE_UNAVAILABLE } from "../runtime/sqlite.ts";
import { WorkerLostError } from "../runtime/worker-calls.ts";
import { type ArenaMemoryStats, ArenaKvNode, type MemoryReporting } from "./arena-node.ts";
import { type DurableFile, InThreadFile, type LoadRow } from "./durable-file.ts";
import { type DurableState, type ReopenOptions, ReopenWaits, readBack } from "./durable-reopen.ts";
import type { RowsFileOptions } from "./durable-rows.ts";
import { type DurableThread, leaseSharedThread, type ThreadLease } from "./durable-thread.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, RawReader, ReadSlot, ScanPage } from "./kv-node.ts";
import { encodeRow } from "./row-codec.ts";
import { StorageError } from "./storage-errors.ts";

/**
 * A start's failure to open a node file, naming it: SQLite's own words ("file
 * is not a database", "disk I/O error") named none of the node files.
 */
function openError(file: string, e: unknown): Error {
  const code = (e as { code?: unknown }).code;
  if (code === SQLITE_UNAVAILABLE) return new Error((e as Error).message, { cause: e });
  // Not the file's fault (the worker did not start, or died): no advice to restore it.
  if (e instanceof WorkerLostError) return new Error(`${file}: not opened, ${e.message}`, { cause: e });
  if (code === "SQLITE_BUSY") {
    return new Error(`${file} is in use by another process (another Quiver on the same --data-dir?): stop it, or give this one another --data-dir`, { cause: e });
  }
  const message = (e as Error).message ?? String(e);
  if (message.includes(file)) return e as Error;
  return new Error(`${file}: ${message}; restore the file from a backup, or move it aside to start without its rows`, { cause: e });
}

export interface DurableNodeOptions extends RowsFileOptions {
  /**
   * Where SQLite runs: by default the process's shared SQLite thread
   * (durable-thread.ts) where the runtime has Worker, this thread otherwise;
   * a DurableThread of the caller's (tests); `false`: this thread.
   */
  readonly thread?: DurableThread | false;
  /** How the file is reopened when its SQLite thread is lost (see DurableKvNode). */
  readonly reopen?: ReopenOptions;
}

/**
 * An embedded node that keeps every row in memory for reads and in a SQLite
 * file (WAL mode) for durability. A write is acknowledged only after its
 * transaction commits, so acknowledged writes survive `kill -9`; on start the
 * file is loaded back into memory. Reads never touch SQLite.
 *
 * The in-memory copy is an ArenaKvNode (rows as bytes in slabs, no GC cell per
 * row). Both sides hold the same row-codec bytes, so a write is encoded once
 * and a restart copies blobs into the arena without decoding them.
 *
 * The commits run on the process's SQLite thread (a worker shared by every
 * durable file): this thread picks a batch's winners against memory, sends
 * them, and makes the rows the file took visible when the commit's answer
 * comes. Committed on the serving thread, every lookup of the process waited
 * behind each commit, its fsync (`--durability full`) and the WAL checkpoints
 * (12-07, ext4 on this machine's virtual disk, 20k 1-row pushes with `full`:
 * held p50 0.13-0.15 ms, p99 0.5-3.6 ms, max 9-53 ms; 500-row pushes p50
 * 2.6-3.9 ms, p99 25-28 ms). Now a push holds it only to pick, encode and
 * send its rows (p50 0.02 ms, p99 0.13 ms; 500 rows p50 0.7-0.9 ms).
 * With several batches in flight, memory still ends on the newest row: the
 * file keeps the newest (its upsert's WHERE), answers which rows it took, and
 * answers in commit order. SQLite comes through the runtime's adapter
 * (runtime/sqlite.ts), loaded in the thread that runs it.
 *
 * Should the thread be lost (a crash, terminated), the node reopens its file
 * on a new one by itself (ReopenOptions: 100 ms doubling to 5 s, 10
 * attempts), then reads back the keys whose writes and deletes the lost
 * thread had not answered, so memory holds exactly what the file took without
 * a full reload. Writes meanwhile are refused unsent (503 + Retry-After), not
 * queued; a node that gives up stays `failed` (health, and readiness in
 * app.ts) and refuses writes until the process restarts.
 */
export class DurableKvNode implements KvNode, MemoryReporting {
  private closing: Promise<void> | undefined;
  private stateNow: DurableState = "open";
  /** Reopen attempts since the thread was lost, the last failure's (or the loss's) message, and reopens done since open. */
  private attempts = 0;
  private lastError: string | undefined;
  private reopens = 0;
  /** When the file was last reopened (ReopenWaits.now), for a thread lost again soon after (ReopenOptions.stableMs). */
  private reopenedAt: number | undefined;
  private reopening: Promise<void> | undefined;
  private readonly waits: ReopenWaits;
  /** The keys of each write and delete sent and not yet answered. */
  private readonly inFlight = new Set<readonly string[]>();
  /** Keys whose write or delete was in flight when the thread was lost: maybe in the file, read back at reopen. */
  private readonly uncertain = new Set<string>();

  /** A node on the file `file` (created when missing, its rows loaded when not). */
  static async open(id: string, file: string, options: DurableNodeOptions = {}): Promise<DurableKvNode> {
    const memory = new ArenaKvNode(id);
    const load: LoadRow = (key, row) => void memory.putEncoded(key, row);
    const lease: ThreadLease | undefined =
      options.thread === false || (options.thread === undefined && typeof Worker !== "function") ? undefined : options.thread === undefined ? leaseSharedThread() : { thread: options.thread, release: () => {} };
    const settings: RowsFileOptions = { sync: options.sync ?? "normal", pragmas: options.pragmas ?? [] };
    const sqlite = lease === undefined ? await loadSqlite() : undefined;
    try {
      const disk = sqlite !== undefined ? InThreadFile.open(file, sqlite, settings, load) : await lease!.thread.open(file, settings, load);
      const node = new DurableKvNode(id, file, memory, disk, lease?.release ?? (() => {}), settings, options.reopen ?? {});
      if (lease !== undefined) node.watch(lease.thread);
      return node;
    } catch (e) {
      lease?.release();
      throw openError(file, e);
    }
  }

  private constructor(
    readonly id: string,
    readonly file: string,
    private readonly memory: ArenaKvNode,
    private disk: DurableFile,
    private release: () => void,
    private readonly settings: RowsFileOptions,
    private readonly reopenOptions: ReopenOptions,
  ) {
    this.waits = new ReopenWaits(reopenOptions);
  }

  /** open, reopening (its SQLite thread was lost) or failed (given up reopening: health and /readyz say so). */
  get state(): DurableState {
    return this.stateNow;
  }

  /** Times the file was reopened on a new thread since open. */
  get reopenCount(): number {
    return this.reopens;
  }

  /** Waits for a reopen under way (if any) to end: answers the state then, open or failed. */
  async recovery(): Promise<DurableState> {
    await this.reopening;
    return this.stateNow;
  }

  get size(): number {
    return this.memory.size;
  }

  /** The in-memory copy's slab and table usage, for metrics. */
  memoryStats(): ArenaMemoryStats {
    return this.memory.memoryStats();
  }

  getMany(keys: readonly string[]): Promise<ReadSlot[]> {
    return this.memory.getMany(keys);
  }

  readonly readsNow = "always";

  /** Reads never touch SQLite: the arena's bytes are the rows. */
  get rawNow(): RawReader {
    return this.memory;
  }

  getManyNow(keys: readonly string[]): ReadSlot[] {
    return this.memory.getManyNow(keys);
  }

  /** Commits the winning rows to disk first, then makes the ones the file took visible in memory. */
  async putMany(entries: readonly KvEntry[]): Promise<PutOutcome> {
    if (this.closing !== undefined) throw this.closedError("write");
    if (this.stateNow !== "open") throw this.notOpenError("write");
    const tally = { sameTime: 0 };
    const winners = this.pickWinners(entries, tally);
    if (winners.length === 0) return { written: 0, ignored: entries.length, sameTime: tally.sameTime };
    const keys: string[] = new Array(winners.length);
    const ts = new Float64Array(winners.length);
    const rows: Uint8Array[] = new Array(winners.length);
    for (let i = 0; i < winners.length; i++) {
      keys[i] = winners[i]!.key;
      ts[i] = winners[i]!.row.ts;
      rows[i] = encodeRow(winners[i]!.row);
    }
    let taken: Uint8Array;
    this.inFlight.add(keys);
    try {
      taken = await this.disk.write(keys, ts, rows);
    } catch (e) {
      throw this.storageError(e, "write");
    } finally {
      this.inFlight.delete(keys);
    }
    // Answers come in commit order, so memory takes exactly the file's changes, in its order. A winner the file
    // did not take lost to a batch committed while this one was in flight: memory holds that batch's row now.
    let written = 0;
    for (let i = 0; i < winners.length; i++) {
      if (taken[i] === 1) {
        this.memory.putEncoded(keys[i]!, rows[i]!);
        written++;
      } else if (this.memory.timestampOf(keys[i]!) === winners[i]!.row.ts) tally.sameTime++;
    }
    return { written, ignored: entries.length - written, sameTime: tally.sameTime };
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    if (this.closing !== undefined) throw this.closedError("delete");
    if (this.stateNow !== "open") throw this.notOpenError("delete");
    this.inFlight.add(keys);
    try {
      await this.disk.delete(keys);
    } catch (e) {
      throw this.storageError(e, "delete");
    } finally {
      this.inFlight.delete(keys);
    }
    return this.memory.deleteManySync(keys);
  }

  /**
   * SQLite's failures (the disk full, an I/O error, the file made read-only)
   * become a StorageError: the edges answer 503 with Retry-After (gRPC
   * UNAVAILABLE) and streaming writers hand the batch back, instead of a 500
   * for a bug. The transaction rolled back, so nothing of the call was
   * stored, in the file or in memory. The SQLite thread gone before it
   * answered is one too, but whether the call reached the file is unknown
   * (the reopen reads its keys back: memory then holds what the file took);
   * a call made after it was gone was never sent (`sent: "nothing"`).
   */
  private storageError(e: unknown, what: "write" | "delete"): StorageError {
    if (e instanceof WorkerLostError && e.unsent) return this.notOpenError(what, e);
    if (e instanceof WorkerLostError) {
      return new StorageError("storage_write_failed", `the durable store ${this.id} (${this.file}) could not ${what}: ${e.message} before it answered; this ${what} may or may not be in the file: the file is reopened on a new thread, and memory then serves what the file holds of it`, true, e);
    }
    const sqlite = e as { code?: unknown; message?: unknown };
    const code = typeof sqlite.code === "string" ? sqlite.code : "";
    const message = typeof sqlite.message === "string" ? sqlite.message : String(e);
    const full = code === "SQLITE_FULL";
    return new StorageError(full ? "storage_full" : "storage_write_failed", `the durable store ${this.id} (${this.file}) could not ${what}: ${message}${code ? ` (${code})` : ""}; nothing of this ${what} was stored there (another node's share of the same request may have been: retry it, the last write wins)`, true, e);
  }

  /** A write refused, unsent, while the file is reopened or after the node gave up: nothing of it was stored. */
  private notOpenError(what: "write" | "delete", cause?: unknown): StorageError {
    const why =
      this.stateNow === "failed"
        ? `its SQLite thread was lost and the file could not be reopened in ${this.attempts} attempts (${this.lastError}); no other can be made until the server restarts`
        : `its SQLite thread was lost and the file is being reopened (attempt ${this.attempts}); retry it`;
    return new StorageError("storage_write_failed", `the durable store ${this.id} (${this.file}) could not ${what}: ${why}; nothing of this ${what} was stored`, true, cause, "nothing");
  }

  private closedError(what: "write" | "delete"): StorageError {
    return new StorageError("storage_write_failed", `the durable store ${this.id} (${this.file}) could not ${what}: it is closed; nothing of this ${what} was stored`, false, undefined, "nothing");
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.memory.scan(cursor, count, prefix);
  }

  async health(): Promise<NodeHealth> {
    if (this.closing !== undefined) return { id: this.id, ok: false, detail: { kind: "sqlite", file: this.file, error: "closed" } };
    if (this.stateNow !== "open") {
      return { id: this.id, ok: false, detail: { kind: "sqlite", file: this.file, state: this.stateNow, attempts: this.attempts, maxAttempts: this.waits.maxAttempts, error: this.lastError, keys: this.memory.size } };
    }
    const reopened = this.reopens > 0 ? { reopens: this.reopens } : {};
    try {
      await this.disk.probe();
      return { id: this.id, ok: true, detail: { kind: "sqlite", file: this.file, state: "open", keys: this.memory.size, ...reopened } };
    } catch (e) {
      return { id: this.id, ok: false, detail: { kind: "sqlite", file: this.file, state: "open", error: (e as Error).message, ...reopened } };
    }
  }

  /** Reopens the file when `thread` is lost (this node's thread, once open). */
  private watch(thread: DurableThread): void {
    thread.onLost((lost) => this.threadLost(lost));
  }

  /**
   * Called in the turn the thread is found lost, its pending calls just
   * rejected (their `finally` not run yet): their keys are the ones the file
   * may or may not hold. Writes are refused (unsent) from now until the file
   * is reopened on a new thread and those keys are read back.
   */
  private threadLost(lost: Error): void {
    if (this.closing !== undefined || this.stateNow !== "open") return;
    for (const keys of this.inFlight) for (const k of keys) this.uncertain.add(k);
    this.stateNow = "reopening";
    // Lost again soon after a reopen: the attempts since the first loss go on counting, so a thread that dies
    // after every reopen ends in the give-up (and readiness says so) instead of reopening for ever.
    const again = this.reopenedAt !== undefined && this.waits.now() - this.reopenedAt < this.waits.stableMs;
    if (!again) this.attempts = 0;
    this.lastError = lost.message;
    // This node's share of the lost thread: the thread is gone, the share goes (a shared thread is replaced for the next lease).
    this.release();
    this.release = () => {};
    console.error(`quiver: durable store ${this.id} (${this.file}): ${lost.message}; reopening the file on a new thread (${this.uncertain.size} keys to read back${again ? `; lost again within ${this.waits.stableMs} ms of its reopen: ${this.attempts} of its ${this.waits.maxAttempts} attempts spent` : ""})`);
    this.reopenOptions.onEvent?.("thread_lost", this.id);
    this.reopening = this.reopenLoop();
  }

  private async reopenLoop(): Promise<void> {
    while (this.closing === undefined) {
      if (this.attempts >= this.waits.maxAttempts) {
        this.stateNow = "failed";
        console.error(`quiver: durable store ${this.id} (${this.file}): gave up reopening after ${this.attempts} attempts (${this.lastError}); writes are refused until the server restarts`);
        this.reopenOptions.onEvent?.("gave_up", this.id);
        return;
      }
      await this.waits.before(this.attempts);
      if (this.closing !== undefined) return;
      this.attempts++;
      const lease = this.reopenOptions.lease?.() ?? leaseSharedThread();
      try {
        const disk = await lease.thread.open(this.file, this.settings, undefined);
        try {
          await readBack(disk, this.memory, [...this.uncertain]);
          this.uncertain.clear();
        } catch (e) {
          await disk.close().catch(() => {});
          throw e;
        }
        this.disk = disk;
        this.release = lease.release;
        this.stateNow = "open";
        this.reopens++;
        this.reopenedAt = this.waits.now();
        this.lastError = undefined;
        this.watch(lease.thread);
        console.error(`quiver: durable store ${this.id} (${this.file}): reopened on a new SQLite thread (attempt ${this.attempts})`);
        this.reopenOptions.onEvent?.("reopened", this.id);
        return;
      } catch (e) {
        lease.release();
        this.lastError = openError(this.file, e).message;
      }
    }
  }

  /**
   * Closes the file after the writes in flight (their commits are answered
   * first), letting go of its lock, and this node's share of the SQLite
   * thread. Writes made from now on are refused. A thread already gone has
   * nothing left to close.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // A reopen under way ends first (its wait cut short): the file it may just have opened is the one closed here.
      this.waits.cancel();
      await this.reopening;
      try {
        await this.disk.close();
      } catch (e) {
        if (!(e instanceof WorkerLostError)) throw e;
      } finally {
        this.release();
        await this.memory.close();
      }
    })();
    return this.closing;
  }

  /**
   * Last-write-wins against memory and within the batch, without touching
   * memory yet. Stored event times are read from the bytes, not decoded rows.
   */
  private pickWinners(entries: readonly KvEntry[], tally: { sameTime: number }): KvEntry[] {
    // A same-key overwrite inside one batch counts as a write, as separate writes would.
    const winners: KvEntry[] = [];
    const floorOf = new Map<string, number>();
    for (const e of entries) {
      const floor = floorOf.get(e.key) ?? this.memory.timestampOf(e.key) ?? Number.NEGATIVE_INFINITY;
      if (e.row.ts > floor) {
        winners.push(e);
        floorOf.set(e.key, e.row.ts);
      } else if (e.row.ts === floor) tally.sameTime++;
    }
    return winners;
  }
}
