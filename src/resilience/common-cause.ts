import type { StorageTimeoutError } from "../kv/storage-errors.ts";
import type { StallJudge, StallVerdict, TimedOutCall } from "./local-stall.ts";

/** Settings of CommonCauseJudge. */
export interface CommonCauseOptions {
  /** Most time (ms) a shard's timeouts are excused within `accountMs`; beyond it they count against the shard. Default 1000. */
  readonly maxEpisodeMs?: number;
  /** Shortest window (ms) in which timeouts of different shards count as together. Default 100. */
  readonly minWindowMs?: number;
  /** How far back (ms) a shard's excused time is added up: the breakers' window (`breakerWindowMs`). Default 10000. */
  readonly accountMs?: number;
}

const DEFAULT_MAX_EPISODE_MS = 1000;
const DEFAULT_MIN_WINDOW_MS = 100;
const DEFAULT_ACCOUNT_MS = 10_000;

/** A shard's excused stretches: the open one (correlated timeouts, the shard answering none between them) and closed ones. */
interface Excused {
  /** The open stretch: its first and last correlated timeout (NaN when none is open). */
  start: number;
  last: number;
  /** Closed stretches within `accountMs`, as start, end pairs. */
  readonly closed: number[];
}
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
 * - It lasts `maxEpisodeMs` (`--common-stall-ms`, default 1 s) per shard,
 *   added up over the breakers' window (`accountMs`, 10 s): a shard's
 *   stretch of correlated timeouts runs from its first to its last with no
 *   read of that shard answering between them, and the excused time is the
 *   length of its stretches within the window. A shard that stays down
 *   with the others (the whole tier down, the network to them cut) is an
 *   outage, and the breakers must open so lookups answer defaults at once
 *   instead of after their budget. So a whole-tier outage opens the
 *   breakers ~1 s later than a single shard's. Until 12-07 this was one
 *   episode for all shards, restarted by any gap longer than the window once
 *   any shard answered: under light traffic (a lookup every 250 ms) a hung
 *   shard and a slow one, timing out together while a third answered, were
 *   excused for good and never opened their breakers.
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
  /** Per shard that had correlated timeouts lately, its excused stretches. */
  private readonly excused = new Map<string, Excused>();
  private readonly maxEpisodeMs: number;
  private readonly minWindowMs: number;
  private readonly accountMs: number;

  constructor(
    private readonly inner: StallJudge,
    /** How many shards the store has now (the ring's members). */
    private readonly shardCount: () => number,
    options: CommonCauseOptions = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.maxEpisodeMs = options.maxEpisodeMs ?? DEFAULT_MAX_EPISODE_MS;
    this.minWindowMs = options.minWindowMs ?? DEFAULT_MIN_WINDOW_MS;
    this.accountMs = options.accountMs ?? DEFAULT_ACCOUNT_MS;
    if (!(this.maxEpisodeMs >= 0)) throw new Error(`common-cause episode: expected >= 0 ms, got ${this.maxEpisodeMs}`);
    if (!(this.minWindowMs > 0)) throw new Error(`common-cause window: expected > 0 ms, got ${this.minWindowMs}`);
    if (!(this.accountMs > 0)) throw new Error(`common-cause account: expected > 0 ms, got ${this.accountMs}`);
  }

  /** A read of `shard` answered: its open stretch of correlated timeouts ends. Called on every read that answered. */
  answered(shard?: string): void {
    if (this.excused.size === 0 || shard === undefined) return;
    const e = this.excused.get(shard);
    if (e === undefined || Number.isNaN(e.start)) return;
    e.closed.push(e.start, e.last);
    e.start = Number.NaN;
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
    // Correlated timeouts extend the shard's stretch whoever is blamed for each (a tier-wide outage makes long loop
    // turns too, and the loop-stall judge excuses many); a read of the shard that answered ends it, and so does a gap
    // longer than the account (nothing is known of the shard meanwhile).
    const local = this.inner.stalled(timeout, call);
    if (!correlated) return local;
    const e = this.stretchOf(call.shard, t);
    const from = t - this.accountMs;
    let spent = t - Math.max(e.start, from);
    for (let i = 0; i < e.closed.length; i += 2) spent += Math.max(0, e.closed[i + 1]! - Math.max(e.closed[i]!, from));
    if (spent >= this.maxEpisodeMs) return local;
    const spanMs = t - e.start + window;
    if (local !== null) return { ...local, spanMs };
    return { cause: "common", why: `${together} of ${shards} shards timed out within ${Math.round(window)} ms`, spanMs };
  }

  /** The shard's excused stretches with the open one extended to `t` (opened if none is), closed ones older than the account dropped. */
  private stretchOf(shard: string, t: number): Excused {
    let e = this.excused.get(shard);
    if (e === undefined) {
      e = { start: t, last: t, closed: [] };
      this.excused.set(shard, e);
      return e;
    }
    if (!Number.isNaN(e.start) && t - e.last > this.accountMs) {
      e.closed.push(e.start, e.last);
      e.start = Number.NaN;
    }
    if (Number.isNaN(e.start)) e.start = t;
    e.last = t;
    let keep = 0;
    while (keep < e.closed.length && e.closed[keep + 1]! < t - this.accountMs) keep += 2;
    if (keep > 0) e.closed.splice(0, keep);
    return e;
  }
}
