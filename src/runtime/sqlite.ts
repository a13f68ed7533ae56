/**
 * The embedded SQLite database the durable node keeps its rows in, as an
 * interface: Bun's `bun:sqlite` is the implementation here; another runtime's
 * entry point supplies its own (Deno's or Node's `node:sqlite` has the same
 * shape) without the core changing. Only what the durable node's file
 * (kv/durable-rows.ts) uses.
 */

/** A value SQLite stores: TEXT, REAL/INTEGER, BLOB or NULL. */
export type SqlValue = string | number | Uint8Array | null;

export interface SqliteStatement {
  /** Runs the statement; named parameters (`$k` in the SQL) are passed without their `$`. Answers how many rows it changed. */
  run(params: Readonly<Record<string, SqlValue>>): { readonly changes: number };
  /** The first row the statement answers (an object of its columns), or null when none. */
  get(params: Readonly<Record<string, SqlValue>>): unknown;
  /** Frees it: a database closes (and lets go of its file) only once its statements are finalized. */
  finalize(): void;
}

export interface SqliteDatabase {
  /** Runs SQL with no parameters and no rows wanted (pragmas, DDL, a health probe). */
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  /** `fn` wrapped in BEGIN … COMMIT (ROLLBACK when it throws); answers what `fn` answered. */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  /** The rows of a query without parameters, one at a time (a restart's load reads every row). */
  each<R>(sql: string): IterableIterator<R>;
  close(): void;
}

/** Opens (creating when missing) the database file `file`. */
export type OpenSqlite = (file: string) => SqliteDatabase;

/** The `code` of loadSqlite's error where the runtime has no adapter (the durable store's worker passes it on). */
export const SQLITE_UNAVAILABLE = "sqlite_unavailable";

/**
 * The runtime's SQLite, loaded on first use (only a server run with
 * `--data-dir` needs it): Bun's `bun:sqlite`. Throws elsewhere, naming this
 * file, until that runtime's adapter is added.
 */
export async function loadSqlite(): Promise<OpenSqlite> {
  if ((globalThis as { Bun?: unknown }).Bun === undefined) {
    throw Object.assign(new Error("the durable store (--data-dir) needs SQLite, and this runtime has no adapter yet (src/runtime/sqlite.ts)"), { code: SQLITE_UNAVAILABLE });
  }
  const { Database } = await import("bun:sqlite");
  return (file) => {
    // strict: named parameters bind without their prefix, as SqliteStatement documents.
    const db = new Database(file, { create: true, strict: true });
    return {
      exec: (sql) => void db.run(sql),
      // Bun's Statement and transaction function have these shapes already: handed out as they are, no wrapper per write.
      prepare: (sql) => db.prepare(sql),
      transaction: (fn) => db.transaction(fn),
      each: <R>(sql: string) => db.query<R, []>(sql).iterate(),
      close: () => db.close(false),
    };
  };
}
