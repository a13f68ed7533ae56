import { type WorkerLike, WorkerCalls, WorkerLostError } from "../runtime/worker-calls.ts";
import type { DurableFile, LoadRow } from "./durable-file.ts";
import type { RowsFileOptions } from "./durable-rows.ts";

/** What the durable store's worker (durable-worker.ts) is asked. */
export type DurableCall =
  /** `load`: send the file's rows (a start); a reopen after the thread was lost sends none, memory has them. */
  | { readonly op: "open"; readonly handle: number; readonly file: string; readonly options: RowsFileOptions; readonly load: boolean }
  /** The stored rows of `keys`, sent as progress pages (keys without a row are left out). */
  | { readonly op: "read"; readonly handle: number; readonly keys: readonly string[] }
  | { readonly op: "write"; readonly handle: number; readonly keys: readonly string[]; readonly ts: Float64Array; readonly bytes: Uint8Array; readonly ends: Uint32Array }
  | { readonly op: "delete"; readonly handle: number; readonly keys: readonly string[] }
  | { readonly op: "close"; readonly handle: number }
  /** Test hooks: block the thread until `gate[0]` is set (a slow commit, a stuck fsync); end it from its next call, unanswered. */
  | { readonly op: "hold"; readonly gate: SharedArrayBuffer }
  /** Test hook: the next write or delete, committed, sets `gate[1]` and waits until `gate[0]` is set before it answers. */
  | { readonly op: "holdAfterCommit"; readonly gate: SharedArrayBuffer }
  | { readonly op: "crash" };

/** Rows sent at open, a page at a time: row i is keys[i] and bytes[ends[i-1] .. ends[i]). */
export interface RowsPage {
  readonly keys: readonly string[];
  readonly bytes: Uint8Array;
  readonly ends: Uint32Array;
}

/**
 * The process's SQLite thread: every durable file of the process (one per
 * embedded node) is opened, written and closed on this one worker, so a
 * commit — its B-tree work, its fsync with `--durability full`, a WAL
 * checkpoint — never holds the serving thread; that thread only packs a
 * batch's rows into one buffer (moved to the worker, not copied) and applies
 * the committed rows to memory when the answer comes. One thread for all
 * files: the worker does one thing at a time, the files' commits queue behind
 * each other there as they did on the serving thread, and a process opens
 * one worker however many nodes it has.
 */
export class DurableThread {
  private readonly calls: WorkerCalls;
  private nextHandle = 1;

  /** `spawn` makes the worker (tests keep it, to end it under a pending write). */
  constructor(spawn: (url: string) => WorkerLike = (url) => new Worker(url, { type: "module" }) as unknown as WorkerLike) {
    this.calls = new WorkerCalls(spawn(new URL("./durable-worker.ts", import.meta.url).href), "the durable store's SQLite thread");
  }

  /** Why the thread is gone (it then fails every call), or undefined while it runs. */
  get lost(): Error | undefined {
    return this.calls.lost;
  }

  /** Settles once the worker has ended (after it was lost): the files it held are let go. */
  get ended(): Promise<void> {
    return this.calls.ended;
  }

  /** Calls `listener` once, in the turn the thread is found lost (pending calls rejected just before). */
  onLost(listener: (lost: Error) => void): void {
    this.calls.onLost(listener);
  }

  /**
   * Opens (creating when missing) `file` on the thread, `load` getting each of
   * its rows (none sent without it: a reopen), and holds its lock.
   */
  async open(file: string, options: RowsFileOptions, load: LoadRow | undefined): Promise<DurableFile> {
    const handle = this.nextHandle++;
    try {
      await this.calls.call({ op: "open", handle, file, options, load: load !== undefined } satisfies DurableCall, [], load === undefined ? undefined : (progress) => visitPage(progress as RowsPage, load));
    } catch (e) {
      // `load` failing here (a row memory refuses) leaves the thread holding the file it opened, and its lock, with
      // no node to close it: a second open in this process was refused as "in use by another process". Closed first,
      // so the open fails with the file let go (a file the thread never opened answers not_open, ignored).
      if (!(e instanceof WorkerLostError)) await this.calls.call({ op: "close", handle } satisfies DurableCall).catch(() => {});
      throw e;
    }
    return new ThreadFile(this.calls, handle);
  }

  /** Ends the thread: calls still pending are rejected. */
  terminate(): void {
    this.calls.terminate();
  }

  /** Test hook: blocks the thread (as a stuck fsync would) until the returned function is called. */
  holdForTest(): () => void {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    void this.calls.call({ op: "hold", gate: gate.buffer as SharedArrayBuffer } satisfies DurableCall).catch(() => {});
    return () => {
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
    };
  }

  /**
   * Test hook: the next write or delete commits, then holds the thread
   * before it answers; `committed` settles once it got there, `release`
   * lets it answer.
   */
  holdAfterCommitForTest(): { committed: Promise<void>; release: () => void } {
    const gate = new Int32Array(new SharedArrayBuffer(8));
    const waiting = Atomics.waitAsync(gate, 1, 0);
    void this.calls.call({ op: "holdAfterCommit", gate: gate.buffer as SharedArrayBuffer } satisfies DurableCall).catch(() => {});
    return {
      committed: waiting.async ? waiting.value.then(() => {}) : Promise.resolve(),
      release: () => {
        Atomics.store(gate, 0, 1);
        Atomics.notify(gate, 0);
      },
    };
  }

  /** Test hook: the thread throws an uncaught error from its next call, which it leaves unanswered. */
  crashForTest(): void {
    void this.calls.call({ op: "crash" } satisfies DurableCall).catch(() => {});
  }
}

/** A durable file on the SQLite thread. */
class ThreadFile implements DurableFile {
  constructor(
    private readonly calls: WorkerCalls,
    private readonly handle: number,
  ) {}

  write(keys: readonly string[], ts: Float64Array, rows: readonly Uint8Array[]): Promise<Uint8Array> {
    // One buffer for the batch, moved to the worker: no structured clone of a typed array per row.
    const ends = new Uint32Array(rows.length);
    let total = 0;
    for (let i = 0; i < rows.length; i++) ends[i] = total += rows[i]!.length;
    const buffer = new ArrayBuffer(total);
    const bytes = new Uint8Array(buffer);
    for (let i = 0; i < rows.length; i++) bytes.set(rows[i]!, i === 0 ? 0 : ends[i - 1]!);
    return this.calls.call<Uint8Array>({ op: "write", handle: this.handle, keys, ts, bytes, ends } satisfies DurableCall, [buffer, ends.buffer as ArrayBuffer, ts.buffer as ArrayBuffer]);
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.calls.call({ op: "delete", handle: this.handle, keys } satisfies DurableCall);
  }

  read(keys: readonly string[], visit: LoadRow): Promise<void> {
    return this.calls.call({ op: "read", handle: this.handle, keys } satisfies DurableCall, [], (progress) => visitPage(progress as RowsPage, visit));
  }

  /**
   * The thread's state, not a call to it: a probe queued behind the commits in
   * flight answered only after all of them (measured: 4 nodes, 200 queued
   * 500-row pushes with `full`, health 306-622 ms), and never while one was
   * stuck, so /readyz, which must not depend on storage, hung with the disk.
   * `SELECT 1` on the file, held exclusively, touched no disk anyway.
   */
  probe(): Promise<void> {
    const lost = this.calls.lost;
    return lost === undefined ? Promise.resolve() : Promise.reject(lost);
  }

  close(): Promise<void> {
    return this.calls.call({ op: "close", handle: this.handle } satisfies DurableCall);
  }
}

function visitPage(page: RowsPage, visit: LoadRow): void {
  let start = 0;
  for (let i = 0; i < page.keys.length; i++) {
    visit(page.keys[i]!, page.bytes.subarray(start, page.ends[i]!));
    start = page.ends[i]!;
  }
}

/** A share of the process's SQLite thread; `release` once its files are closed. */
export interface ThreadLease {
  readonly thread: DurableThread;
  release(): void;
}

let shared: { thread: DurableThread; users: number } | undefined;

/**
 * The process's shared SQLite thread, started by its first user and ended
 * when the last one releases it (so no test or process has a thread to
 * stop); a thread that was lost is replaced for the next user. Release only
 * after the lease's files closed: ending the thread drops what it had not
 * answered.
 */
export function leaseSharedThread(): ThreadLease {
  if (shared === undefined || shared.thread.lost !== undefined) shared = { thread: new DurableThread(), users: 0 };
  const lease = shared;
  lease.users++;
  let released = false;
  return {
    thread: lease.thread,
    release: () => {
      if (released) return;
      released = true;
      if (--lease.users > 0) return;
      if (shared === lease) shared = undefined;
      lease.thread.terminate();
    },
  };
}
