import type { OpenSqlite } from "../runtime/sqlite.ts";
import { RowsFile, type RowsFileOptions } from "./durable-rows.ts";

/**
 * A durable node's SQLite file as DurableKvNode sees it: every call answers
 * once its transaction committed (or failed, rolled back). Two homes:
 * ThreadFile (durable-thread.ts), the process's SQLite worker, so commits,
 * fsyncs and WAL checkpoints do not hold the serving thread; and InThreadFile
 * here, for runtimes without Worker. Calls are done in the order made, and
 * answered in that order.
 *
 * Failures reject with the SQLite error's `code` and message (WorkerCallError,
 * or SQLite's own error in this thread), or WorkerLostError when the worker
 * ended before it answered.
 */
export interface DurableFile {
  /** RowsFile.write: per row, 1 if the file took it (it held nothing as new or newer). `ts` may be moved to another thread (unusable here after the call). */
  write(keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]): Promise<Uint8Array>;
  delete(keys: readonly string[]): Promise<void>;
  /** `visit` gets the stored row of each of `keys` that has one (a reopen's check of the writes a lost thread left unanswered). */
  read(keys: readonly string[], visit: LoadRow): Promise<void>;
  /** Rejects when the database cannot answer (on the SQLite thread: the thread is gone; answered without queueing behind commits). */
  probe(): Promise<void>;
  /** Closes the file and lets go of its lock, after the calls made before it. */
  close(): Promise<void>;
}

/** Receives the file's rows at open, one at a time (the bytes are valid only during the call). */
export type LoadRow = (key: string, row: Uint8Array) => void;

/** The file in the calling thread: each commit holds it for its whole transaction (and fsync with `sync: full`). */
export class InThreadFile implements DurableFile {
  static open(file: string, openSqlite: OpenSqlite, options: RowsFileOptions, load: LoadRow): InThreadFile {
    const rows = RowsFile.open(file, openSqlite, options);
    try {
      rows.load(load);
    } catch (e) {
      rows.close();
      throw e;
    }
    return new InThreadFile(rows);
  }

  private constructor(private readonly rows: RowsFile) {}

  write(keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]): Promise<Uint8Array> {
    return settled(() => this.rows.write(keys, ts, rows));
  }

  delete(keys: readonly string[]): Promise<void> {
    return settled(() => this.rows.delete(keys));
  }

  read(keys: readonly string[], visit: LoadRow): Promise<void> {
    return settled(() => this.rows.read(keys, visit));
  }

  probe(): Promise<void> {
    return settled(() => this.rows.probe());
  }

  close(): Promise<void> {
    return settled(() => this.rows.close());
  }
}

/** `run`'s result as a promise, its throw as a rejection: the calls answer as the SQLite thread's do, never throwing. */
function settled<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (e) {
    return Promise.reject(e);
  }
}
