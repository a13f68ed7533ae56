import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type ArenaMemoryStats, ArenaKvNode, type MemoryReporting } from "./arena-node.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, RawReader, ReadSlot, ScanPage } from "./kv-node.ts";
import { loadSqlite, type OpenSqlite, type SqliteDatabase, type SqliteStatement } from "../runtime/sqlite.ts";
import { encodeRow } from "./row-codec.ts";
import { StorageError } from "./storage-errors.ts";

export interface DurableNodeOptions {
  /**
   * `normal` (default) survives a killed process: every commit is in the WAL
   * before the write is acknowledged. `full` also fsyncs each commit, surviving
   * power loss at the cost of write latency.
   */
  readonly sync?: "normal" | "full";
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
 * SQLite comes through the runtime's adapter (runtime/sqlite.ts): `open`
 * loads it; the constructor takes an opener, so a test or another runtime can
 * hand in its own.
 */
export class DurableKvNode implements KvNode, MemoryReporting {
  private readonly db: SqliteDatabase;
  private readonly memory: ArenaKvNode;
  private readonly upsert: SqliteStatement;
  private readonly remove: SqliteStatement;
  private readonly writeBatch: (entries: readonly KvEntry[], rows: readonly Uint8Array[]) => void;
  private readonly deleteBatch: (keys: readonly string[]) => void;

  /** A node on the file `file` (created when missing, its rows loaded when not), with the runtime's SQLite. */
  static async open(id: string, file: string, options: DurableNodeOptions = {}): Promise<DurableKvNode> {
    const sqlite = await loadSqlite();
    try {
      return new DurableKvNode(id, file, sqlite, options);
    } catch (e) {
      const message = (e as Error).message ?? String(e);
      // SQLite's own words ("file is not a database", "disk I/O error") named none of the node files.
      if (message.includes(file)) throw e;
      throw new Error(`${file}: ${message}; restore the file from a backup, or move it aside to start without its rows`, { cause: e });
    }
  }

  constructor(
    readonly id: string,
    readonly file: string,
    openSqlite: OpenSqlite,
    options: DurableNodeOptions = {},
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = openSqlite(file);
    // One process per file: its rows live in this process's memory too, so a second writer's rows would be
    // invisible here and ours to it. SQLite's exclusive locking holds the file from the first access until close
    // (in WAL mode without the shared-memory index), and a second opener gets SQLITE_BUSY at once.
    try {
      this.db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec("CREATE TABLE IF NOT EXISTS rows (k TEXT PRIMARY KEY, ts REAL NOT NULL, v BLOB NOT NULL) WITHOUT ROWID");
    } catch (e) {
      this.db.close();
      if ((e as { code?: unknown }).code !== "SQLITE_BUSY") throw e;
      throw new Error(`${file} is in use by another process (another Quiver on the same --data-dir?): stop it, or give this one another --data-dir`);
    }
    this.db.exec(`PRAGMA synchronous = ${options.sync === "full" ? "FULL" : "NORMAL"}`);
    // The WHERE clause repeats last-write-wins inside SQLite, so the file is
    // right even if memory and disk were ever to disagree.
    this.upsert = this.db.prepare(
      "INSERT INTO rows (k, ts, v) VALUES ($k, $ts, $v) ON CONFLICT(k) DO UPDATE SET ts = excluded.ts, v = excluded.v WHERE excluded.ts > rows.ts",
    );
    this.remove = this.db.prepare("DELETE FROM rows WHERE k = $k");
    this.writeBatch = this.db.transaction((entries: readonly KvEntry[], rows: readonly Uint8Array[]) => {
      for (let i = 0; i < entries.length; i++) this.upsert.run({ k: entries[i]!.key, ts: entries[i]!.row.ts, v: rows[i]! });
    });
    this.deleteBatch = this.db.transaction((keys: readonly string[]) => {
      for (const k of keys) this.remove.run({ k });
    });
    this.memory = new ArenaKvNode(id);
    for (const r of this.db.each<{ k: string; v: Uint8Array }>("SELECT k, v FROM rows")) {
      this.memory.putEncoded(r.k, r.v);
    }
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

  putMany(entries: readonly KvEntry[]): Promise<PutOutcome> {
    try {
      return Promise.resolve(this.putManySync(entries));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Commits the winning rows to disk first, then makes them visible in memory. */
  putManySync(entries: readonly KvEntry[]): PutOutcome {
    const tally = { sameTime: 0 };
    const winners = this.pickWinners(entries, tally);
    if (winners.length > 0) {
      const rows = winners.map((e) => encodeRow(e.row));
      this.commit(() => this.writeBatch(winners, rows), "write");
      // Winners are strictly newer than memory and than each other per key, so all apply.
      for (let i = 0; i < winners.length; i++) this.memory.putEncoded(winners[i]!.key, rows[i]!);
    }
    return { written: winners.length, ignored: entries.length - winners.length, sameTime: tally.sameTime };
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    this.commit(() => this.deleteBatch(keys), "delete");
    return this.memory.deleteManySync(keys);
  }

  /**
   * Runs one transaction. SQLite's failures (the disk full, an I/O error, the
   * file made read-only) become a StorageError: the edges answer 503 with
   * Retry-After (gRPC UNAVAILABLE) and streaming writers hand the batch back,
   * instead of a 500 for a bug. The transaction rolled back, so nothing of
   * the call was stored, in the file or in memory.
   */
  private commit(run: () => void, what: "write" | "delete"): void {
    try {
      run();
    } catch (e) {
      const sqlite = e as { code?: unknown; message?: unknown };
      const code = typeof sqlite.code === "string" ? sqlite.code : "";
      const message = typeof sqlite.message === "string" ? sqlite.message : String(e);
      const full = code === "SQLITE_FULL";
      throw new StorageError(full ? "storage_full" : "storage_write_failed", `the durable store ${this.id} (${this.file}) could not ${what}: ${message}${code ? ` (${code})` : ""}; nothing of this ${what} was stored there (another node's share of the same request may have been: retry it, the last write wins)`, true, e);
    }
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.memory.scan(cursor, count, prefix);
  }

  async health(): Promise<NodeHealth> {
    try {
      this.db.exec("SELECT 1");
      return { id: this.id, ok: true, detail: { kind: "sqlite", file: this.file, keys: this.memory.size } };
    } catch (e) {
      return { id: this.id, ok: false, detail: { kind: "sqlite", file: this.file, error: (e as Error).message } };
    }
  }

  async close(): Promise<void> {
    await this.memory.close();
    // A statement left unfinalized keeps the connection, and with it the file's lock, after close.
    this.upsert.finalize();
    this.remove.finalize();
    this.db.close();
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
