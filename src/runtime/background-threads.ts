import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * Gives the runtime's background threads a low priority (a high nice value),
 * so they run in the serving thread's idle time instead of taking its core
 * from it mid-request. They are:
 * - `JITWorker`: JavaScriptCore's DFG/FTL compiler threads. Hot functions are
 *   recompiled after start-up whenever the traffic's shape changes (12-06: in
 *   the first second of single lookups after a batch run, FTL compiles of
 *   5-9 ms each, 44 ms in all, and more later: 70 ms over 30 s), and JSC's own
 *   priority delta for them has no effect on Linux.
 * - `mi-scavenger`: mimalloc's thread returning freed pages to the kernel
 *   (50-65 ms per 10 s at 40k lookups/s).
 * - `JSCWarmUp`: JavaScriptCore's marked-block warm-up thread (the
 *   `useWarmUpMarkedBlocks` options), which returns idle heap blocks to the
 *   kernel (madvise, and the TLB flushes that come with it). Idle on the
 *   embedded store; on Redis shards with the L1 cache it ran 0.27-0.36 s of
 *   every 11 s at half capacity (12-06, AMD, 100-entity lookups at 1,600/s on
 *   3 shards, the shards on the server's core). Lowered too (four alternating
 *   pairs on one server): the serving thread's run-queue wait 0.65-0.93 s
 *   against 0.82-1.53 s, requests shed (503) 0 / 104 / 0 / 0 against 1,816 /
 *   288 / 0 / 317, p99 9.2-11.9 against 6.6-44.8 ms; closed loop 3.81-3.84k
 *   against 3.58-3.70k lookups/s (two pairs).
 * On a server given one core (as the benches pin it) every millisecond they
 * run is a millisecond a request waits. Measured (12-06, Intel, 1M rows, 10 s
 * at 40k lookups/s after a batch run, two runs each): the serving thread's
 * run-queue wait (runnable, not running; /proc schedstat) 89-109 ms at nice 0,
 * 35-49 ms with these threads at 19. With idle time they still run at once;
 * on a saturated core a compile takes longer to land.
 *
 * Linux only (thread ids and names from /proc/self/task, `setpriority` per
 * thread through os.setPriority); elsewhere it finds no threads and does
 * nothing. The names are the runtime's (Bun 1.4: JavaScriptCore, mimalloc v3).
 */
export const BACKGROUND_THREADS: readonly string[] = ["JITWorker", "mi-scavenger", "JSCWarmUp"];

export interface BackgroundThreadsOptions {
  /** The nice value to give them (0-19; 19 is the lowest priority). */
  readonly nice: number;
  /** Thread names (exact, as /proc shows them) to lower; default BACKGROUND_THREADS. */
  readonly names?: readonly string[];
  /** Where the process's threads are listed (tests pass a fake tree). */
  readonly taskDir?: string;
  /** Sets one thread's nice value (tests pass a fake). */
  readonly setNice?: (tid: number, nice: number) => void;
}

export class BackgroundThreads {
  private readonly names: ReadonlySet<string>;
  private readonly taskDir: string;
  private readonly setNice: (tid: number, nice: number) => void;
  /** Threads already lowered, by id (a thread is lowered once; ids are not reused while the process lives). */
  private readonly lowered = new Map<number, string>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly options: BackgroundThreadsOptions) {
    if (!(Number.isInteger(options.nice) && options.nice >= 0 && options.nice <= 19)) throw new Error(`background threads: nice must be 0-19, got ${options.nice}`);
    this.names = new Set(options.names ?? BACKGROUND_THREADS);
    this.taskDir = options.taskDir ?? "/proc/self/task";
    this.setNice = options.setNice ?? ((tid, nice) => setPriority(tid, nice));
  }

  /** Lowers every matching thread not lowered yet; returns the names of those it lowered now. Never throws. */
  apply(): string[] {
    let tids: string[];
    try {
      tids = readdirSync(this.taskDir);
    } catch {
      return [];
    }
    const now: string[] = [];
    for (const entry of tids) {
      const tid = Number(entry);
      if (!Number.isInteger(tid) || this.lowered.has(tid)) continue;
      let name: string;
      try {
        name = readFileSync(`${this.taskDir}/${entry}/comm`, "utf8").trim();
      } catch {
        continue; // The thread ended between the listing and the read.
      }
      if (!this.names.has(name)) continue;
      try {
        this.setNice(tid, this.options.nice);
      } catch {
        continue;
      }
      this.lowered.set(tid, name);
      now.push(name);
    }
    return now;
  }

  /** The threads lowered so far, as `name ×count`, for the start-up log. */
  describe(): string {
    const counts = new Map<string, number>();
    for (const name of this.lowered.values()) counts.set(name, (counts.get(name) ?? 0) + 1);
    // In the order the names are given, not the order /proc lists the threads in (which the filesystem picks).
    return [...this.names].flatMap((name) => {
      const n = counts.get(name);
      return n === undefined ? [] : [n > 1 ? `${name} ×${n}` : name];
    }).join(", ") || "none found";
  }

  /**
   * Applies now, then every `everyMs` on an unref'd timer: the runtime starts
   * some of these threads only when first needed (the JIT's on its first
   * optimising compile). Each check lists a dozen /proc entries.
   */
  start(everyMs: number): this {
    this.apply();
    if (this.timer === undefined && everyMs > 0) {
      this.timer = setInterval(() => this.apply(), everyMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
