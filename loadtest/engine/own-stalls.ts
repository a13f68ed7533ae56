/**
 * The generator's own stalls: spans in which its event loop did not run
 * (its collections, its compiler threads or another process on its core).
 * An answer that arrives during one sits unread, its connection looks busy,
 * and a request due meanwhile waits for a connection: the open loop counts
 * that wait as the server's latency, and the own send lag (which counts only
 * waits while a connection is free) does not see it. Measured 12-06: at 22k
 * requests a second on 256 connections, the bare server's slow windows
 * (23–74 ms) fell on the generator's own loop stalls of 11–28 ms, in 2 runs
 * of 5; runs without such a stall had none.
 *
 * A timer ticks every `everyMs`; a tick (or an answer) that finds more than
 * `everyMs + thresholdMs` since the last tick marks the span between them as
 * a stall. Answers check first (`observe`), so a stall is known before the
 * answers that waited through it are recorded, whichever the loop runs first.
 */
export class OwnStalls {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;
  private last = Number.NaN;
  /** Stalls seen, in all (the ring keeps the latest `keep`). */
  private count = 0;

  constructor(
    readonly everyMs: number,
    readonly thresholdMs: number,
    /** How many of the latest stalls `overlaps` can see: enough for a request's whole flight (its timeout). */
    private readonly keep = 256,
  ) {
    if (!(everyMs > 0) || !(thresholdMs > 0) || !(keep > 0)) throw new Error(`own stalls: expected positive settings, got every ${everyMs} ms, threshold ${thresholdMs} ms, keep ${keep}`);
    this.starts = new Float64Array(keep);
    this.ends = new Float64Array(keep);
  }

  /** The timer's tick at `now` (ms). */
  tick(now: number): void {
    this.observe(now);
    this.last = now;
  }

  /** Called at `now` by anything the loop runs: records the span since the last tick if it was a stall. */
  observe(now: number): void {
    const gap = now - this.last;
    if (!(gap > this.everyMs + this.thresholdMs)) return;
    const i = this.count % this.keep;
    this.starts[i] = this.last;
    this.ends[i] = now;
    this.count++;
    // The stall is recorded: a second observer before the next tick must not record it again.
    this.last = now;
  }

  /**
   * The stalls that ended at or after `since` (ms): how many, the longest and
   * their total; `complete` is false when the ring had dropped some of them.
   */
  summary(since: number): OwnStallSummary {
    const seen = Math.min(this.count, this.keep);
    let count = 0;
    let maxMs = 0;
    let totalMs = 0;
    let k = 1;
    for (; k <= seen; k++) {
      const i = (this.count - k) % this.keep;
      if (this.ends[i]! < since) break;
      const ms = this.ends[i]! - this.starts[i]!;
      count++;
      totalMs += ms;
      if (ms > maxMs) maxMs = ms;
    }
    return { everyMs: this.everyMs, thresholdMs: this.thresholdMs, count, maxMs, totalMs, complete: k <= seen || this.count <= this.keep };
  }

  /** Did a stall overlap [from, to] (ms)? Looks back through the latest `keep` stalls. */
  overlaps(from: number, to: number): boolean {
    const seen = Math.min(this.count, this.keep);
    for (let k = 1; k <= seen; k++) {
      const i = (this.count - k) % this.keep;
      if (this.ends[i]! < from) return false;
      if (this.starts[i]! <= to) return true;
    }
    return false;
  }
}

export interface OwnStallSummary {
  /** The tick's period and how late past it a tick marks a stall (ms). */
  readonly everyMs: number;
  readonly thresholdMs: number;
  readonly count: number;
  readonly maxMs: number;
  readonly totalMs: number;
  /** False when more stalls happened than the ring keeps: the figures cover the latest only. */
  readonly complete: boolean;
}
