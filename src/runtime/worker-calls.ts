/**
 * Calls to a long-lived worker thread: each request carries an id, the worker
 * answers it once (after any number of progress messages), and the caller's
 * promise settles with the answer. A reply that can never come is the danger
 * of talking to a thread, and each way it goes missing is covered:
 *
 * - the thread ends (terminated, exited, crashed): its queued and unanswered
 *   requests are lost with it, and no reply ever says so. Every pending call
 *   is rejected (WorkerLostError) on the worker's `error` event (an uncaught
 *   exception), on `messageerror`, on its `close` event (Bun and Node's web
 *   Worker fire it however the thread ended: Bun 1.4 sends only `close` for an
 *   exception thrown while handling an uncaught one), and when `terminate()`
 *   is called here; calls made afterwards are rejected at once, unsent;
 * - a worker whose script awaits before installing its message handler: Bun
 *   1.4 drops what arrives in that window, as browsers and Deno do
 *   (oven-sh/bun#40141). The worker's side (see worker-answers.ts) installs
 *   its handler first and queues the work behind its start-up instead;
 * - a request the worker fails on: answered as an error (`code`, `message`),
 *   never left to become an uncaught exception in the worker.
 *
 * Replies come back in the order the worker answers. The thread keeps the
 * process alive only while a call is pending (`ref`/`unref` where the runtime
 * has them), so an idle worker never holds up the exit of a process that
 * forgot to close it.
 */

/** The parts of a Worker used here (the web Worker, with Bun's and Node's ref/unref when present). */
export interface WorkerLike {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  terminate(): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
  ref?(): void;
  unref?(): void;
}

/** What the thread is sent: the call's id and its body. */
export interface CallRequest {
  readonly id: number;
  readonly body: unknown;
}

/** What the thread answers: progress (optional, any number), then a value or an error. */
export type CallReply =
  | { readonly id: number; readonly progress: unknown }
  | { readonly id: number; readonly value: unknown }
  | { readonly id: number; readonly error: { readonly code: string; readonly message: string } };

/** A call the worker answered with an error: the thrown error's `code` (e.g. SQLITE_FULL) and message. */
export class WorkerCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "WorkerCallError";
  }
}

/**
 * The thread ended before it answered: whether the call's work was done is
 * unknown, unless `unsent` (the call was made after the thread was known to be
 * gone, and never sent: its work was certainly not done).
 */
export class WorkerLostError extends Error {
  readonly code = "worker_lost";

  constructor(
    message: string,
    readonly unsent = false,
  ) {
    super(message);
    this.name = "WorkerLostError";
  }
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly progress: ((progress: unknown) => void) | undefined;
  /** What a progress callback threw: the call is rejected with it when its answer comes. */
  failed?: unknown;
}

export class WorkerCalls {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lostWith: WorkerLostError | undefined;
  private readonly lostListeners: ((lost: WorkerLostError) => void)[] = [];
  private endedNow!: () => void;
  /** Settles when the runtime says the thread has ended (its `close` event): what it held, a file's lock, is let go. */
  readonly ended = new Promise<void>((resolve) => (this.endedNow = resolve));

  /** `name` says whose thread it is in errors ("the durable store's SQLite thread"). */
  constructor(
    private readonly worker: WorkerLike,
    private readonly name: string,
  ) {
    worker.unref?.();
    worker.addEventListener("message", (e) => this.answer((e as MessageEvent<CallReply>).data));
    worker.addEventListener("error", (e) => {
      // Handled here: without preventDefault an uncaught error in a worker is reported as this thread's own.
      e.preventDefault();
      this.lose(`failed: ${(e as ErrorEvent).message ?? "unknown error"}`);
    });
    worker.addEventListener("messageerror", () => this.lose("answered with a message that could not be read"));
    worker.addEventListener("close", () => {
      this.lose("ended");
      this.endedNow();
    });
  }

  /** Why the thread is gone, or undefined while it runs. */
  get lost(): WorkerLostError | undefined {
    return this.lostWith;
  }

  /**
   * Calls `listener` once when the thread is lost (at once when it already is),
   * after every pending call was rejected, in the same turn: whoever tracks
   * what was in flight still sees it.
   */
  onLost(listener: (lost: WorkerLostError) => void): void {
    if (this.lostWith !== undefined) listener(this.lostWith);
    else this.lostListeners.push(listener);
  }

  /** Calls awaiting their answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends `body` (with `transfer`'s buffers moved, not copied) and answers the
   * worker's value; rejects with WorkerCallError when the worker answered an
   * error, WorkerLostError when the thread ended first. `progress` gets each
   * progress message, in order, before the answer.
   */
  call<T>(body: unknown, transfer: ArrayBuffer[] = [], progress?: (progress: unknown) => void): Promise<T> {
    // Refused unsent: the caller can tell nothing of it was done (a write refused so changed no stored row).
    if (this.lostWith !== undefined) return Promise.reject(new WorkerLostError(this.lostWith.message, true));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref?.();
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, progress });
      try {
        this.worker.postMessage({ id, body } satisfies CallRequest, transfer);
      } catch (e) {
        // The body could not be sent (not cloneable): nothing reached the thread.
        this.settled(id);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  /** Stops the thread; calls still pending are rejected. */
  terminate(): void {
    this.lose("was stopped");
  }

  private answer(reply: CallReply): void {
    const call = this.pending.get(reply.id);
    if (call === undefined) return;
    if ("progress" in reply) {
      if (call.failed !== undefined || call.progress === undefined) return;
      try {
        call.progress(reply.progress);
      } catch (e) {
        call.failed = e;
      }
      return;
    }
    this.settled(reply.id);
    if (call.failed !== undefined) call.reject(call.failed instanceof Error ? call.failed : new Error(String(call.failed)));
    else if ("error" in reply) call.reject(new WorkerCallError(reply.error.code, reply.error.message));
    else call.resolve(reply.value);
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref?.();
  }

  private lose(why: string): void {
    if (this.lostWith !== undefined) return;
    this.lostWith = new WorkerLostError(`${this.name} ${why}`);
    this.worker.terminate();
    const calls = [...this.pending.values()];
    this.pending.clear();
    this.worker.unref?.();
    for (const call of calls) call.reject(this.lostWith);
    const listeners = this.lostListeners.splice(0);
    for (const listener of listeners) listener(this.lostWith);
  }
}
