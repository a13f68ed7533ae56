import type { StorageTimeoutError } from "../kv/storage-errors.ts";
import type { StallJudge, StallVerdict, TimedOutCall } from "./local-stall.ts";

/** Settings of CommonCauseJudge. */
export interface CommonCauseOptions {
  /** Longest stretch (ms) of correlated timeouts that is excused; then they count against their shards. Default 1000. */
  readonly maxEpisodeMs?: number;
  /** Shortest window (ms) in which timeouts of different shards count as together. Default 100. */
  readonly minWindowMs?: number;
}

const DEFAULT_MAX_EPISODE_MS = 1000;
const DEFAULT_MIN_WINDOW_MS = 100;
/** Longest gap between correlated timeouts, with no shard read answering in it, that continues their episode. */
const MAX_QUIET_GAP_MS = 10_000;

/**
 * Timeouts that hit most shards at once are not any one shard's fault.
 *
 * Each shard's read breaker opens after 5 failures in 10 s (issue 8's
 * reference figures). At thousands of lookups a second, one brief stall that
 * slows every shard together yields that many timeouts per shard within
 * milliseconds. The stall may be the host or network they share, or a
 * neighbour starving them of CPU. A breaker opened that way answers defaults
 * for a healthy shard's keys for its whole open time (30 s).
 * Measured 12-05: 3x overload of 100-entity lookups with the three
 * redis-servers sharing a saturated core. 35 timeouts hit each shard within
 * 60 ms; the loop-stall judge excused most of them, not five on one shard.
 * That shard's breaker opened, and 51,197 reads of its keys answered defaults.
 *
 * This judge composes another (the process-local one, whose verdict stands)
 * and adds one rule. A timeout is a common cause's, not the shard's, when timeouts of
 * more than half of the shards (this one included, at least two) fall within
 * the last `2 × budget` (at least `minWindowMs`). The excuse has limits:
 * - It lasts `maxEpisodeMs` (`--common-stall-ms`, default 1 s) per episode
 *   of correlated timeouts (no gap longer than the window between them,
 *   excused as local stalls or not). A run of them that goes on is an outage of the storage tier
 *   (every shard down, the network to them cut), and the breakers must open
 *   so lookups answer defaults at once instead of after their budget. So a
 *   whole-tier outage opens the breakers ~1 s later than a single shard's.
 * - A breaker's trial call (half-open) is never excused (judgeTimeout): an
 *   excused trial would close the breaker, letting every read try a dead
 *   tier again. It reopens the breaker for the short retrial time instead.
 * - The first timeout of a stall is judged before any other shard's: it
 *   counts against its shard. The verdicts that follow carry the stretch
 *   they cover (`spanMs`), and the shard forgives the failures it counted
 *   within it (ResilientShard), so repeated stalls add nothing up. So do
 *   the process-local judge's verdicts within such a stretch (its verdict
 *   stands, the span is added): where this process was stalled as well,
 *   each of the shard's later timeouts in the stall was blamed on the loop,
 *   and the first one, counted, was never taken back: on a busy host each
 *   shared stall could leave one behind, and five within 10 s open a
 *   healthy shard's breaker.
 * A single hung shard is judged as before: the other shards do not time out
 * with it.
 */
export class CommonCauseJudge implements StallJudge {
  /** Per shard, when its last timeout was judged (ms, `now`'s clock). */
  private readonly lastTimeout = new Map<string, number>();
  private episodeStart = Number.NEGATIVE_INFINITY;
  private lastCorrelated = Number.NEGATIVE_INFINITY;
  /** Shard reads that answered, and how many had when the last correlated timeout was judged. */
  private answers = 0;
  private answersAtLast = -1;
  private readonly maxEpisodeMs: number;
  private readonly minWindowMs: number;

  constructor(
    private readonly inner: StallJudge,
    /** How many shards the store has now (the ring's members). */
    private readonly shardCount: () => number,
    options: CommonCauseOptions = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.maxEpisodeMs = options.maxEpisodeMs ?? DEFAULT_MAX_EPISODE_MS;
    this.minWindowMs = options.minWindowMs ?? DEFAULT_MIN_WINDOW_MS;
    if (!(this.maxEpisodeMs >= 0)) throw new Error(`common-cause episode: expected >= 0 ms, got ${this.maxEpisodeMs}`);
    if (!(this.minWindowMs > 0)) throw new Error(`common-cause window: expected > 0 ms, got ${this.minWindowMs}`);
  }

  answered(): void {
    this.answers++;
  }

  stalled(timeout: StorageTimeoutError, call?: TimedOutCall): StallVerdict | null {
    if (call === undefined) return this.inner.stalled(timeout);
    const t = this.now();
    // Every timeout is noted, excused or not: the other shards' verdicts compare against it.
    this.lastTimeout.set(call.shard, t);
    const shards = this.shardCount();
    const window = Math.max(this.minWindowMs, 2 * timeout.budgetMs);
    let together = 0;
    for (const at of this.lastTimeout.values()) if (t - at <= window) together++;
    const correlated = shards >= 2 && together * 2 > shards;
    // An episode: correlated timeouts with no gap longer than the window between them, whoever is blamed
    // for each (a tier-wide outage makes long loop turns too, and the loop-stall judge excuses many); or
    // with longer gaps in which no shard read answered at all (MAX_QUIET_GAP_MS). Under light traffic every
    // lookup's reads timed out together, each lookup alone: a new episode each time, excused forever, and
    // a whole tier down opened no breaker (one lookup every 300 ms, 14 s at the full budget).
    if (correlated) {
      const quiet = this.answers === this.answersAtLast;
      if (t - this.lastCorrelated > window && !(quiet && t - this.lastCorrelated <= MAX_QUIET_GAP_MS)) this.episodeStart = t;
      this.lastCorrelated = t;
      this.answersAtLast = this.answers;
    }
    const local = this.inner.stalled(timeout, call);
    if (!correlated || t - this.episodeStart > this.maxEpisodeMs) return local;
    const spanMs = t - this.episodeStart + window;
    if (local !== null) return { ...local, spanMs };
    return { cause: "common", why: `${together} of ${shards} shards timed out within ${Math.round(window)} ms`, spanMs };
  }
}
