import type { ArenaKvNode } from "./arena-node.ts";
import type { DurableFile } from "./durable-file.ts";
import type { ThreadLease } from "./durable-thread.ts";

/** Reopening a file whose SQLite thread was lost: attempt n waits min(firstDelayMs × 2^(n-1), maxDelayMs) first. */
export interface ReopenOptions {
  /** Default 100 ms. */
  readonly firstDelayMs?: number;
  /** Default 5000 ms. */
  readonly maxDelayMs?: number;
  /** Attempts before the node gives up and stays failed (its health says so); default 10 (~26 s of waits). */
  readonly maxAttempts?: number;
  /**
   * A thread lost again within this long of a reopen goes on counting the
   * attempts since the first loss instead of starting again at 0 (default
   * 60 000 ms): a thread that dies after every reopen (a write that crashes
   * it, resent by its client) ends in the give-up, not in reopens for ever.
   */
  readonly stableMs?: number;
  /** The clock for stableMs (ms; tests: a fake one); default performance.now. */
  readonly now?: () => number;
  /** Waits `ms` (tests: a fake clock); default a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The thread a reopen runs on; default a share of the process's SQLite thread (a new one once the lost one is gone). */
  readonly lease?: () => ThreadLease;
  /** Hears the node's thread lost, its file reopened, or the node given up (app.ts notes anomalies). */
  readonly onEvent?: (event: ReopenEvent, nodeId: string) => void;
}

/** What a durable node's reopen tells its owner. */
export type ReopenEvent = "thread_lost" | "reopened" | "gave_up";

/** Where a durable node's file stands: open, being reopened after its thread was lost, or given up on. */
export type DurableState = "open" | "reopening" | "failed";

/** The reopen back-off: each attempt's wait, cut short by `cancel` (the node closing). */
export class ReopenWaits {
  readonly maxAttempts: number;
  readonly stableMs: number;
  readonly now: () => number;
  private readonly first: number;
  private readonly max: number;
  private cancelNow: (() => void) | undefined;

  constructor(private readonly options: ReopenOptions) {
    this.maxAttempts = options.maxAttempts ?? 10;
    this.stableMs = options.stableMs ?? 60_000;
    this.now = options.now ?? (() => performance.now());
    this.first = options.firstDelayMs ?? 100;
    this.max = options.maxDelayMs ?? 5000;
  }

  /** Waits before attempt `done + 1` (`done` attempts made since the loss). */
  before(done: number): Promise<void> {
    const ms = Math.min(this.first * 2 ** done, this.max);
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.cancelNow = () => {
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      if (this.options.sleep !== undefined) void this.options.sleep(ms).then(resolve, resolve);
      else timer = setTimeout(resolve, ms);
    });
  }

  cancel(): void {
    this.cancelNow?.();
  }
}

/**
 * Memory and the file agree again without a full reload: each of `keys`
 * (writes and deletes the lost thread left unanswered) is read back; memory
 * takes the file's row when newer (last write wins), and drops a row the file
 * no longer holds (a delete that committed: memory holds only rows the file
 * took).
 */
export async function readBack(disk: DurableFile, memory: ArenaKvNode, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const stored = new Set<string>();
  await disk.read(keys, (key, row) => {
    stored.add(key);
    memory.putEncoded(key, row);
  });
  const gone = keys.filter((k) => !stored.has(k) && memory.timestampOf(k) !== undefined);
  if (gone.length > 0) memory.deleteManySync(gone);
}
