/** Weight of the newest gap in the moving average of the time between releases (~16 releases' memory). */
const GAP_WEIGHT = 1 / 16;

/** A request waiting for a concurrency slot: when it arrived (admission clock, ms) and how to answer it. */
export interface Waiter {
  readonly at: number;
  readonly resolve: (startedAt: number) => void;
}

export interface AdmissionQueueOptions {
  /** Requests that may wait (0: none). */
  readonly capacity: number;
  /** Longest a request waits while no queue stands (ms): room for bursts. */
  readonly timeoutMs: number;
  /** Sojourn above which waiters count towards a standing queue (ms; CoDel's target). 0 turns standing-queue detection off: plain FIFO with `timeoutMs`. */
  readonly targetMs: number;
  /** Longest a waiter waits while the queue stands (ms; default and at most `targetMs`); the owner may change it (`setStandingWait`, standing-wait.ts). */
  readonly standingWaitMs?: number;
  /** How long waiters must leave above the target before the queue counts as standing (ms; CoDel's interval). */
  readonly intervalMs: number;
  /**
   * While the queue stands at its first standing wait (`standingWaitMs`), it keeps only the waiters that the
   * slots' releases over this share of that wait would take (at least one) and refuses further arrivals at once
   * (`refuseArrivalAt`); 0 (default): every arrival waits its turn.
   */
  readonly standingRoom?: number;
}

/**
 * The admission queue's discipline: a queue that absorbs bursts, not one
 * that stands.
 *
 * Beyond the concurrency limit requests wait for a slot, first come first
 * served, up to `timeoutMs`: a burst passes with some delay and no refusals.
 * Under sustained overload that queue never drains, and a FIFO queue then
 * adds its whole length to every admitted request without adding throughput
 * (the slots are busy either way): on 3 Redis shards at 3x capacity the 64
 * waiters held admitted lookups ~40 ms (p50) against ~3 ms of service, and
 * the refused ones waited out the 50 ms timeout first.
 *
 * So, as CoDel decides when a queue stands and Facebook's adaptive LIFO
 * serves one: once waiters have left the queue after more than `targetMs`
 * for `intervalMs` on end, the queue is standing. While it stands, the
 * newest waiter is served first (it has the best chance to be answered in
 * time), a waiter that waited `standingWaitMs` is refused, and a full queue
 * makes room for an arrival by refusing its oldest waiter. Admitted requests
 * then wait about nothing, refused ones at most that wait. Newest first, a
 * waiter that has seen a millisecond of newer arrivals pass it is almost
 * never served, and keeping it only delays its 503; but a client that
 * resends a 503 at once comes back that much sooner, so the owner learns the
 * wait (standing-wait.ts) and sets it here (`setStandingWait`); by default
 * it is the target. The queue stops standing once it has refused no one for
 * `intervalMs`: the load fell to what the slots serve (an empty queue alone
 * says little: while it stands, refusals empty it often).
 *
 * With `standingRoom`, a queue standing at its first wait keeps only the
 * waiters that the slots' releases over that share of the wait would take
 * (at least one; the owner reports each release, `released`): an arrival
 * beyond them would only wait out the standing wait to be refused, so it is
 * refused on arrival (`refuseArrivalAt`), before its body is read. Once the
 * owner has set a longer wait (refused clients come back at once, and a
 * refusal's wait is what paces them), every arrival waits its turn again.
 */
export class AdmissionQueue {
  private readonly items: Waiter[] = [];
  /** Since when waiters have left above the target (NaN: the last one left within it). */
  private aboveSince = Number.NaN;
  private standing = false;
  /** When a standing queue last refused a waiter (or began standing). */
  private lastDropAt = 0;

  /** The bound on a waiter's wait while the queue stands. */
  private standingBound: number;
  /** The first standing wait: the one `standingRoom` applies at. */
  private readonly firstBound: number;
  /** Standing episodes begun since start: a new one tells the owner a new overload. */
  private episodes = 0;
  /** Moving average of the time between slot releases (ms; NaN until two releases). */
  private releaseGap = Number.NaN;
  private lastReleaseAt = Number.NaN;

  constructor(private readonly o: AdmissionQueueOptions) {
    if (!(o.capacity >= 0)) throw new Error(`admission queue: capacity must be >= 0, got ${o.capacity}`);
    if (!(o.timeoutMs > 0)) throw new Error(`admission queue: timeout must be > 0 ms, got ${o.timeoutMs}`);
    if (!(o.targetMs >= 0)) throw new Error(`admission queue: target must be >= 0 ms, got ${o.targetMs}`);
    if (o.standingWaitMs !== undefined && !(o.standingWaitMs > 0)) throw new Error(`admission queue: standing wait must be > 0 ms, got ${o.standingWaitMs}`);
    if (o.standingRoom !== undefined && !(o.standingRoom >= 0)) throw new Error(`admission queue: standing room must be >= 0, got ${o.standingRoom}`);
    this.standingBound = Math.min(o.standingWaitMs ?? o.targetMs, o.targetMs, o.timeoutMs);
    this.firstBound = this.standingBound;
  }

  /** Sets the bound on a waiter's wait while the queue stands (ms, at most the target). */
  setStandingWait(ms: number): void {
    if (!(ms > 0)) throw new Error(`admission queue: standing wait must be > 0 ms, got ${ms}`);
    this.standingBound = Math.min(ms, this.o.targetMs, this.o.timeoutMs);
  }

  /** The bound on a waiter's wait while the queue stands (ms). */
  get standingWaitMs(): number {
    return this.standingBound;
  }

  /** Is the queue standing (as of the last call that looked)? */
  get isStanding(): boolean {
    return this.standing;
  }

  /** Standing episodes begun since start. */
  get standingEpisodes(): number {
    return this.episodes;
  }

  get length(): number {
    return this.items.length;
  }

  get capacity(): number {
    return this.o.capacity;
  }

  /** Is a queue standing at `now`, for gauges: one that has refused no one for the interval has stopped, even if no call has said so yet. */
  isStandingAt(now: number): boolean {
    return this.standing && now - this.lastDropAt < this.o.intervalMs;
  }

  /** Would an arrival now be refused outright (full, and no older waiter to give way)? */
  get refusesArrivals(): boolean {
    return this.items.length >= this.o.capacity && !(this.standing && this.o.capacity > 0);
  }

  /**
   * Refuses an arrival that has not yet cost anything (its body unread)?
   * Yes when `refusesArrivals`, or when the queue stands at its first wait
   * and already holds its room (`standingRoom`); such a refusal counts as
   * the standing queue's (it goes on standing). Call `expired` first, as
   * before any decision on the queue.
   */
  refuseArrivalAt(now: number): boolean {
    if (this.refusesArrivals) return true;
    const room = this.o.standingRoom ?? 0;
    if (room === 0 || !this.standing || this.items.length === 0 || this.standingBound > this.firstBound) return false;
    // NaN (no releases measured yet) compares false: no room limit.
    if (!(this.items.length * this.releaseGap >= this.standingBound * room)) return false;
    this.lastDropAt = now;
    return true;
  }

  /** A slot was released at `now` (an admitted request ended): the pace that sizes a standing queue's room. */
  released(now: number): void {
    const gap = now - this.lastReleaseAt;
    this.lastReleaseAt = now;
    if (!(gap >= 0)) return;
    this.releaseGap = Number.isNaN(this.releaseGap) ? gap : this.releaseGap + (gap - this.releaseGap) * GAP_WEIGHT;
  }

  /** Queues `w`; returns the waiter that gave way for it (to be refused), if any. Check `refusesArrivals` first. */
  push(w: Waiter): Waiter | undefined {
    const evicted = this.items.length >= this.o.capacity ? this.items.shift() : undefined;
    if (evicted !== undefined) this.lastDropAt = w.at;
    this.items.push(w);
    return evicted;
  }

  /** When the oldest waiter's wait passes its bound (as `expired` judges it now), or undefined when nobody waits. */
  expiresAt(): number | undefined {
    const oldest = this.items[0];
    return oldest === undefined ? undefined : oldest.at + this.bound();
  }

  /** Removes and returns the oldest waiter if it has waited past its bound at `now`, else undefined. */
  expired(now: number): Waiter | undefined {
    if (this.standing && now - this.lastDropAt >= this.o.intervalMs) this.stopStanding();
    const oldest = this.items[0];
    if (oldest === undefined || now - oldest.at <= this.bound()) return undefined;
    if (this.standing) this.lastDropAt = now;
    return this.items.shift();
  }

  /** Removes and returns the waiter to admit into a freed slot; call `expired` until it answers undefined first. */
  next(now: number): Waiter | undefined {
    const w = this.standing ? this.items.pop() : this.items.shift();
    if (w === undefined) {
      // A free slot and nobody waiting: whatever queue there was has drained.
      this.aboveSince = Number.NaN;
      return undefined;
    }
    if (!this.standing) {
      this.observe(now - w.at, now);
      // First come first served and now empty: the burst has drained.
      if (this.items.length === 0) this.aboveSince = Number.NaN;
    }
    return w;
  }

  /**
   * The oldest waiter's bound. While the queue stands, the standing wait,
   * except for a waiter alone in the queue: it is the one the next free slot
   * would take, and refusing it leaves that slot idle until a request is
   * read, so it keeps the target.
   */
  private bound(): number {
    if (!this.standing) return this.o.timeoutMs;
    return this.items.length > 1 ? this.standingBound : Math.min(this.o.targetMs, this.o.timeoutMs);
  }

  /** CoDel's entry rule, on the sojourns of waiters served first come first served. */
  private observe(sojourn: number, now: number): void {
    if (this.o.targetMs === 0 || sojourn <= this.o.targetMs) {
      this.aboveSince = Number.NaN;
      return;
    }
    if (Number.isNaN(this.aboveSince)) this.aboveSince = now;
    else if (now - this.aboveSince >= this.o.intervalMs) {
      this.standing = true;
      this.episodes++;
      this.lastDropAt = now;
    }
  }

  private stopStanding(): void {
    this.standing = false;
    this.aboveSince = Number.NaN;
  }
}
