import type { YoungGc } from "./gc.ts";

/**
 * Paces young-generation collections by time while the server is busy.
 *
 * JavaScriptCore sizes its nursery from the heap, and it counts the embedded
 * store's slabs (array buffers) in the heap: with 1M rows loaded (~330 MB) it
 * let ~224 MB be allocated between young collections, where a bare server
 * gets 8 MB. Each request leaves native request and response memory that only
 * a collection frees, so between two collections the server walks through
 * that much memory once, and mimalloc returns the pages that sit freed for
 * its purge delay (100 ms) to the kernel, from a thread of its own on the
 * server's core, to fault them back in: 210–300 minor faults per 1,000 single
 * lookups against the bare server's 7–13. Collecting the young generation
 * every `intervalMs` under load keeps the cycle to a few megabytes, reused
 * before they are purged: 7–10 faults per 1,000.
 *
 * What it buys is the tail, not the throughput (12-04, AMD host, 1M rows,
 * alternating servers): single lookups at 26k req/s open loop, p99 2.6–4.5 ms
 * (median of 5: 3.2) against 5.0–13.9 ms (6.7) without, p90 0.18–0.35 against
 * 0.43–1.66 ms; CPU per lookup at 25k req/s 28.7 against 28.1 µs and closed-loop
 * throughput the same within noise. A young collection pauses the loop 0.3-0.4 ms
 * under 43k lookups/s (12-06, Intel host, gRPC off; ~0.8 ms on 12-04 before the
 * cuts below), mostly fixed: it grows with the code loaded, not with what it
 * frees, since JavaScriptCore finalizes every live function executable and code
 * block at each collection. So a server loads only the code it runs (gRPC, the
 * cache tier, the shard guard when configured; the files' parser in a
 * worker), and `npm run bench -- lookup-alloc` reports the floor: 0.24 ms idle
 * with gRPC off, 0.50 ms with it on. At the default 50 ms it takes ~1% of a busy
 * core and nothing from an idle one: a tick collects only when at least
 * `minRequests` requests were admitted since the last collection.
 *
 * Only a large heap makes the nursery large, so a tick also needs the heap
 * at `minHeapBytes` or more. A small one gets the runtime's own schedule:
 * on 3 Redis shards with 10k demo rows (heap ~30 MB) at 3x overload the paced
 * collections paused 4.7 ms on average (the young objects of in-flight shard
 * calls are live) and bought nothing.
 */
export interface YoungGcPacerOptions {
  /** Time between paced collections (ms); 0 = off (the runtime's own schedule only). */
  readonly intervalMs: number;
  /** Requests that must have been admitted since the last paced collection for a tick to collect. */
  readonly minRequests: number;
  /** Heap size (as of the last collection, bytes) below which no tick collects (default 128 MiB). */
  readonly minHeapBytes?: number;
  /**
   * How long a reading of the heap's size stands (ms, default 1000). Reading
   * it walks the heap's blocks: ~200–300 µs with 1M rows loaded (12-05,
   * measured in the server under load), which read on every 50 ms tick was
   * ~0.5% of a busy core and a quarter-millisecond stall each time. The heap
   * grows and shrinks with the store, slowly, so a second-old reading serves.
   */
  readonly heapCheckMs?: number;
  /** Told each paced collection's pause (ms): the metrics count them. */
  readonly onCollected?: (pauseMs: number) => void;
}

const DEFAULT_MIN_HEAP_BYTES = 128 * 1024 * 1024;
const DEFAULT_HEAP_CHECK_MS = 1000;

export class YoungGcPacer {
  private seen: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private heap = 0;
  private heapReadAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly gc: YoungGc,
    /** A running count of requests admitted (monotonic). */
    private readonly work: () => number,
    private readonly options: YoungGcPacerOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(options.intervalMs >= 0)) throw new Error(`young GC interval: expected >= 0 ms, got ${options.intervalMs}`);
    if (!(options.minRequests >= 0)) throw new Error(`young GC min requests: expected >= 0, got ${options.minRequests}`);
    if (options.heapCheckMs !== undefined && !(options.heapCheckMs >= 0)) throw new Error(`young GC heap check: expected >= 0 ms, got ${options.heapCheckMs}`);
    this.seen = work();
  }

  /** Collects if enough requests came since the last collection; returns whether it did. */
  tick(): boolean {
    const done = this.work();
    if (done - this.seen < this.options.minRequests) return false;
    let t = this.now();
    if (t - this.heapReadAt >= (this.options.heapCheckMs ?? DEFAULT_HEAP_CHECK_MS)) {
      this.heap = this.gc.heapBytes();
      this.heapReadAt = t;
      t = this.now();
    }
    if (this.heap < (this.options.minHeapBytes ?? DEFAULT_MIN_HEAP_BYTES)) return false;
    this.seen = done;
    this.gc.collect();
    this.options.onCollected?.(this.now() - t);
    return true;
  }

  /** Ticks every `intervalMs` on an unref'd timer (never keeps the process alive); no timer when off. */
  start(): this {
    if (this.options.intervalMs > 0 && this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.options.intervalMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
