import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { OpenSqlite, SqliteDatabase, SqliteStatement } from "../runtime/sqlite.ts";

/** How a durable node's file is opened. */
export interface RowsFileOptions {
  /**
   * `normal` (default) survives a killed process: every commit is in the WAL
   * before the write is acknowledged. `full` also fsyncs each commit, surviving
   * power loss at the cost of write latency.
   */
  readonly sync?: "normal" | "full";
  /** PRAGMA statements run after the node's own at open (tests cap a file with `PRAGMA max_page_count`). */
  readonly pragmas?: readonly string[];
}

/**
 * A durable node's SQLite file (WAL mode): one row per key, its row-codec
 * bytes and event time. The SQL only, synchronous, on whichever thread opened
 * it (the durable store's worker, or the serving thread where the runtime has
 * no Worker): DurableKvNode reaches it through a DurableFile. SQLite's
 * failures are thrown as they come (an error with a `code` such as
 * `SQLITE_FULL`, `SQLITE_BUSY`).
 */
export class RowsFile {
  private readonly upsert: SqliteStatement;
  private readonly remove: SqliteStatement;
  private readonly select: SqliteStatement;
  private readonly writeBatch: (keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]) => Uint8Array;
  private readonly deleteBatch: (keys: readonly string[]) => void;

  /** Opens (creating when missing) `file` and holds it: a second opener, in this process or another, gets SQLITE_BUSY. */
  static open(file: string, openSqlite: OpenSqlite, options: RowsFileOptions = {}): RowsFile {
    mkdirSync(dirname(file), { recursive: true });
    const db = openSqlite(file);
    try {
      // One process per file: its rows live in this process's memory too, so a second writer's rows would be
      // invisible here and ours to it. SQLite's exclusive locking holds the file from the first access until close
      // (in WAL mode without the shared-memory index), and a second opener gets SQLITE_BUSY at once.
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("CREATE TABLE IF NOT EXISTS rows (k TEXT PRIMARY KEY, ts REAL NOT NULL, v BLOB NOT NULL) WITHOUT ROWID");
      db.exec(`PRAGMA synchronous = ${options.sync === "full" ? "FULL" : "NORMAL"}`);
      for (const pragma of options.pragmas ?? []) db.exec(pragma);
      return new RowsFile(db);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private constructor(private readonly db: SqliteDatabase) {
    // The WHERE clause repeats last-write-wins inside SQLite: with several batches in flight the file keeps the
    // newest row whatever their order, and a row it did not take reports 0 changes.
    this.upsert = db.prepare("INSERT INTO rows (k, ts, v) VALUES ($k, $ts, $v) ON CONFLICT(k) DO UPDATE SET ts = excluded.ts, v = excluded.v WHERE excluded.ts > rows.ts");
    this.remove = db.prepare("DELETE FROM rows WHERE k = $k");
    this.select = db.prepare("SELECT v FROM rows WHERE k = $k");
    this.writeBatch = db.transaction((keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]) => {
      const taken = new Uint8Array(keys.length);
      for (let i = 0; i < keys.length; i++) taken[i] = this.upsert.run({ k: keys[i]!, ts: ts[i]!, v: rows[i]! }).changes > 0 ? 1 : 0;
      return taken;
    });
    this.deleteBatch = db.transaction((keys: readonly string[]) => {
      for (const k of keys) this.remove.run({ k });
    });
  }

  /** Every stored row, one at a time (a restart's load). */
  load(visit: (key: string, row: Uint8Array) => void): void {
    for (const r of this.db.each<{ k: string; v: Uint8Array }>("SELECT k, v FROM rows")) visit(r.k, r.v);
  }

  /** The stored rows of `keys` (keys without one are skipped): a reopen's check of the writes a lost thread left unanswered. */
  read(keys: readonly string[], visit: (key: string, row: Uint8Array) => void): void {
    for (const k of keys) {
      const r = this.select.get({ k }) as { v: Uint8Array } | null;
      if (r !== null) visit(k, r.v);
    }
  }

  /**
   * Stores row i under keys[i] (event time ts[i]) unless the file holds a row
   * as new or newer, in one transaction; answers, per row, 1 if it was stored.
   * Nothing is stored when it throws.
   */
  write(keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]): Uint8Array {
    return this.writeBatch(keys, ts, rows);
  }

  /** Deletes the keys in one transaction (nothing deleted when it throws). */
  delete(keys: readonly string[]): void {
    this.deleteBatch(keys);
  }

  /** Throws when the database cannot answer (a health probe). */
  probe(): void {
    this.db.exec("SELECT 1");
  }

  /** Closes the file, letting go of its lock. */
  close(): void {
    // A statement left unfinalized keeps the connection, and with it the file's lock, after close.
    this.upsert.finalize();
    this.remove.finalize();
    this.select.finalize();
    this.db.close();
  }
}
