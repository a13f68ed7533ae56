import { AdmissionQueue, type Waiter } from "./admission-queue.ts";
import { GradientLimit, type GradientLimitOptions } from "./gradient-limit.ts";
import type { LoopPressure } from "./loop-pressure.ts";
import { StandingWait } from "./standing-wait.ts";

/**
 * Process-wide admission control, transport-neutral: the HTTP edge answers
 * 503 + Retry-After for a shed request, the gRPC edge RESOURCE_EXHAUSTED.
 *
 *     const t = admission.admit();            // number, or a promise of one when queued
 *     const startedAt = typeof t === "number" ? t : await t;
 *     if (startedAt < 0) return shed(startedAt); // refused: REFUSED_LIMIT or REFUSED_CPU
 *     try { ... } finally { admission.done(startedAt, failed) }
 *
 * Admitting under the limit is synchronous and allocation-free.
 */
/** `admit` refused: the concurrency limit and its queue are full, or the request waited too long for a slot. */
export const REFUSED_LIMIT = -1;
/** `admit` refused: the event loop is overloaded and the request waited in its turn beyond the target (loop-pressure.ts). */
export const REFUSED_CPU = -2;
export type Refusal = typeof REFUSED_LIMIT | typeof REFUSED_CPU;

/** Why a request was refused, for messages, metrics and anomalies. */
export function refusalReason(t: number): "concurrency_limit" | "cpu_overload" {
  return t === REFUSED_CPU ? "cpu_overload" : "concurrency_limit";
}

export interface Admission {
  /** Both steps at once, for a request whose input has arrived whole (a gRPC call): `screen`, then `acquire`. */
  admit(): number | Promise<number>;
  /**
   * The arrival check: REFUSED_CPU (loop-pressure.ts), REFUSED_LIMIT when
   * every slot is taken and the queue is full (what `acquire` would answer
   * now) or stands with no room left (admission-queue.ts, `standingRoom`),
   * or 0 to go on. Takes no slot, so a request can be screened the
   * moment it arrives, cheaply refused with its body unread, and `acquire` a
   * slot once its body has come: a client still sending holds nothing.
   */
  screen(): number;
  /** A concurrency slot: the start time, or REFUSED_LIMIT (queue full, or waited too long for a slot); a promise when queued. */
  acquire(): number | Promise<number>;
  /** Ends an admitted request; `startedAt` is what `admit` or `acquire` answered; `failed` for a 5xx answer. */
  done(startedAt: number, failed?: boolean): void;
  /** Counters and gauges for metrics and the health score. */
  snapshot(): AdmissionSnapshot;
  /** Latency (ms) of requests completed since the previous call, for the p99 an autoscaler reads; resets the interval. */
  takeInterval(): IntervalStats;
}

export interface AdmissionSnapshot {
  readonly limit: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly queueCapacity: number;
  /** Requests refused since start (queue full or queue wait too long). */
  readonly shed: number;
  readonly admitted: number;
  /** Long-run service time the limit is tuned around (ms). */
  readonly baselineMs: number;
  /** Has a queue stood for a while (waiters served newest first, waits cut at the standing wait; admission-queue.ts)? */
  readonly queueStanding: boolean;
  /** In a CPU overload episode: requests that waited in their loop turn beyond the target get 503 (loop-pressure.ts). */
  readonly cpuOverloaded: boolean;
  /** Length of the last event-loop turn that served requests (ms); 0 without the loop-pressure signal. */
  readonly loopTurnMs: number;
  /** How long each loop turn now serves requests while CPU overload is shed (ms; 0 without the loop signal). */
  readonly turnBudgetMs: number;
  /** How long a request may wait for a slot while the queue stands (ms; learnt, standing-wait.ts). */
  readonly standingWaitMs: number;
}

export interface IntervalStats {
  readonly completed: number;
  readonly failed: number;
  readonly shed: number;
  /** p99 service time (ms, upper bucket bound) of the interval; 0 when nothing completed. */
  readonly p99Ms: number;
}

export interface AdmissionOptions extends GradientLimitOptions {
  /** Requests that may wait for a slot (default 64); beyond it requests are shed at once. */
  readonly queue?: number;
  /** Longest a request waits in the queue before it is shed (ms, default 50), while no queue stands. */
  readonly queueTimeoutMs?: number;
  /** Waits above this, for `queueIntervalMs` on end, make the queue standing (ms, default 5; 0: never treat the queue as standing). See admission-queue.ts. */
  readonly queueTargetMs?: number;
  /** Longest a request waits for a slot while the queue stands, where each standing episode starts (ms, at most `queueTargetMs`; default 1.25, two doublings short of the default target; 0: `queueTargetMs`). */
  readonly queueStandingWaitMs?: number;
  /** The longest that wait may be learnt to (ms, standing-wait.ts; default or 0: `queueTargetMs`); the start or less keeps it fixed. */
  readonly queueStandingWaitMaxMs?: number;
  /** How long waiters must leave above the target before the queue counts as standing (ms, default 100). */
  readonly queueIntervalMs?: number;
  /**
   * While the queue stands at its first wait, it keeps waiters only for the slots' releases over this share of
   * that wait and refuses other arrivals at once, their bodies unread (default 0.5; 0: every arrival waits its
   * turn). See admission-queue.ts.
   */
  readonly queueStandingRoom?: number;
  /** A fixed limit instead of the adaptive one (tests, or operators who know theirs). */
  readonly fixedLimit?: number;
  readonly now?: () => number;
  /**
   * Runs `fn` after `ms` (default: an unref'd setTimeout): wakes the queue
   * when its oldest waiter's bound passes, so a waiter is refused on time even
   * when no request arrives or ends meanwhile.
   */
  readonly schedule?: (fn: () => void, ms: number) => void;
  /** Loop-turn sojourn signal that sheds under CPU-bound overload (none: only the concurrency limit sheds). */
  readonly pressure?: LoopPressure;
}

/** Bucket bounds (ms) of the interval latency histogram. */
const BOUNDS_MS = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10_000];

/** Gradient-limited admission with a small queue that absorbs bursts and does not stand (admission-queue.ts). */
export class AdaptiveAdmission implements Admission {
  private readonly limiter: GradientLimit | undefined;
  private readonly fixed: number;
  private inFlight = 0;
  private readonly queue: AdmissionQueue;
  private readonly now: () => number;
  private readonly pressure: LoopPressure | undefined;
  private shedTotal = 0;
  private admittedTotal = 0;
  /** Requests ended without failure since start (the standing wait's goodput). */
  private succeededTotal = 0;
  /** Learns the standing queue's wait; undefined when it is fixed. */
  private readonly standingWait: StandingWait | undefined;
  /** The queue's standing episode the learner is in. */
  private episode = 0;
  private readonly buckets = new Float64Array(BOUNDS_MS.length + 1);
  private completed = 0;
  private failed = 0;
  private shedInterval = 0;

  constructor(options: AdmissionOptions = {}) {
    this.limiter = options.fixedLimit === undefined ? new GradientLimit(options) : undefined;
    this.fixed = options.fixedLimit ?? 0;
    const targetMs = options.queueTargetMs ?? 5;
    const intervalMs = options.queueIntervalMs ?? 100;
    const timeoutMs = options.queueTimeoutMs ?? 50;
    const waitCap = Math.min(targetMs, timeoutMs);
    const startMs = options.queueStandingWaitMs ?? 1.25;
    const floorMs = Math.min(startMs > 0 ? startMs : targetMs, waitCap);
    const ceilingMs = Math.min(options.queueStandingWaitMaxMs !== undefined && options.queueStandingWaitMaxMs > 0 ? options.queueStandingWaitMaxMs : targetMs, waitCap);
    const standingRoom = options.queueStandingRoom ?? 0.5;
    this.queue = new AdmissionQueue({ capacity: options.queue ?? 64, timeoutMs, targetMs, ...(floorMs > 0 ? { standingWaitMs: floorMs } : {}), intervalMs, standingRoom });
    // Windows of two CoDel intervals: a few hundred answers on Redis, enough to tell a step's effect from noise.
    this.standingWait = floorMs > 0 && ceilingMs > floorMs ? new StandingWait({ floorMs, ceilingMs, windowMs: 2 * intervalMs }) : undefined;
    this.now = options.now ?? (() => performance.now());
    this.pressure = options.pressure;
    this.schedule = options.schedule ?? unrefTimeout;
  }

  private readonly schedule: (fn: () => void, ms: number) => void;
  /** When the armed queue wake-up fires (NaN: none armed). */
  private wakeAt = Number.NaN;
  private readonly wake = (): void => {
    this.wakeAt = Number.NaN;
    this.shedExpired(this.now());
    this.armWake();
  };

  /** Requests admitted since start (a running count, read by the young-GC pacer). */
  get admittedCount(): number {
    return this.admittedTotal;
  }

  /** What the snapshot's `admitted` and `shed` count from (`countFromHere`). */
  private admittedBase = 0;
  private shedBase = 0;

  /**
   * The snapshot's `admitted` and `shed`, and the health interval, count from
   * now on: the start-up warm-up's own requests are not the clients'.
   * `admittedCount` keeps running (the young-GC pacer counts work, whoever sent it).
   */
  countFromHere(): void {
    this.admittedBase = this.admittedTotal;
    this.shedBase = this.shedTotal;
    this.takeInterval();
  }

  get limit(): number {
    return this.limiter ? this.limiter.limit : this.fixed;
  }

  admit(): number | Promise<number> {
    const now = this.now();
    if (this.limiter?.probingFloor) this.limiter.expireProbe(now);
    const refused = this.arrival(now);
    if (refused < 0) return refused;
    // With no slot free, `arrival` has just shed the expired waiters and found room in the queue.
    return this.inFlight < this.limit ? this.take(now) : this.enqueue(now);
  }

  screen(): number {
    return this.arrival(this.now());
  }

  /** The arrival check (`screen`): a refusal, or 0. */
  private arrival(now: number): number {
    // CPU-bound overload: the queue is in the sockets, where the limit cannot see it (loop-pressure.ts).
    if (this.pressure !== undefined && !this.pressure.pass(now, this.inFlight)) return this.shed(REFUSED_CPU);
    // No slot and no room to wait for one (a full queue, or a standing one that holds what the next releases take): refused now.
    if (this.inFlight >= this.limit) {
      this.shedExpired(now);
      if (this.queue.refuseArrivalAt(now)) return this.shed();
    }
    return 0;
  }

  acquire(): number | Promise<number> {
    const now = this.now();
    if (this.limiter?.probingFloor) this.limiter.expireProbe(now);
    if (this.inFlight < this.limit) return this.take(now);
    this.shedExpired(now);
    if (this.queue.refusesArrivals) return this.shed();
    return this.enqueue(now);
  }

  private take(now: number): number {
    this.inFlight++;
    this.admittedTotal++;
    return now;
  }

  /** Waits for a slot; the caller has shed the expired waiters and found the queue accepting. */
  private enqueue(now: number): Promise<number> {
    const queued = new Promise<number>((resolve) => {
      const gaveWay = this.queue.push({ at: now, resolve });
      if (gaveWay !== undefined) gaveWay.resolve(this.shed());
    });
    this.armWake();
    return queued;
  }

  /**
   * Arms a wake-up for when the oldest waiter's bound passes (none while one
   * is armed for then or sooner, or nobody waits). A bound can come sooner
   * than the armed one: a standing queue's lone waiter keeps the target
   * until a second arrives (admission-queue.ts); the later timer then finds
   * nothing to do.
   */
  private armWake(): void {
    const due = this.queue.expiresAt();
    if (due === undefined || this.wakeAt <= due) return;
    this.wakeAt = due;
    // A hair past the bound: the queue refuses only waits longer than it.
    this.schedule(this.wake, Math.max(0, due - this.now()) + 0.5);
  }

  done(startedAt: number, failed = false): void {
    const now = this.now();
    const ms = now - startedAt;
    this.limiter?.sample(ms, this.inFlight, now);
    let i = 0;
    while (i < BOUNDS_MS.length && ms > BOUNDS_MS[i]!) i++;
    this.buckets[i]!++;
    this.completed++;
    if (failed) this.failed++;
    else this.succeededTotal++;
    this.inFlight--;
    this.queue.released(now);
    if (this.standingWait !== undefined && this.queue.isStanding) this.learnWait(now, this.standingWait);
    // Hand freed slots to waiters (in the queue's order); those that waited too long are shed. Nothing to do, and no call, when none wait.
    while (this.queue.length > 0 && this.inFlight < this.limit) {
      this.shedExpired(now);
      const w = this.queue.next(now);
      if (w === undefined) break;
      this.inFlight++;
      this.admittedTotal++;
      w.resolve(now);
    }
  }

  /** While the queue stands: feeds the learner its totals and hands the queue the wait it learnt (a new episode starts from the floor). */
  private learnWait(now: number, learner: StandingWait): void {
    const arrivals = this.admittedTotal + this.shedTotal;
    if (this.episode !== this.queue.standingEpisodes) {
      this.episode = this.queue.standingEpisodes;
      learner.reset(now, arrivals, this.succeededTotal, this.shedTotal);
    } else {
      learner.observe(now, arrivals, this.succeededTotal, this.shedTotal);
    }
    if (learner.ms !== this.queue.standingWaitMs) this.queue.setStandingWait(learner.ms);
  }

  private shedExpired(now: number): void {
    for (let w: Waiter | undefined = this.queue.expired(now); w !== undefined; w = this.queue.expired(now)) w.resolve(this.shed());
  }

  snapshot(): AdmissionSnapshot {
    return {
      limit: this.limit,
      inFlight: this.inFlight,
      queued: this.queue.length,
      queueCapacity: this.queue.capacity,
      queueStanding: this.queue.isStandingAt(this.now()),
      shed: this.shedTotal - this.shedBase,
      admitted: this.admittedTotal - this.admittedBase,
      baselineMs: this.limiter?.baselineMs ?? 0,
      cpuOverloaded: this.pressure?.overloaded ?? false,
      loopTurnMs: this.pressure?.lastTurnMs ?? 0,
      turnBudgetMs: this.pressure?.turnBudgetMs ?? 0,
      standingWaitMs: this.queue.standingWaitMs,
    };
  }

  takeInterval(): IntervalStats {
    const total = this.completed;
    let p99 = 0;
    if (total > 0) {
      const rank = Math.ceil(total * 0.99);
      let seen = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        seen += this.buckets[i]!;
        if (seen >= rank) {
          p99 = BOUNDS_MS[i] ?? BOUNDS_MS[BOUNDS_MS.length - 1]! * 2;
          break;
        }
      }
    }
    const out = { completed: total, failed: this.failed, shed: this.shedInterval, p99Ms: p99 };
    this.buckets.fill(0);
    this.completed = 0;
    this.failed = 0;
    this.shedInterval = 0;
    return out;
  }

  private shed(why: Refusal = REFUSED_LIMIT): Refusal {
    this.shedTotal++;
    this.shedInterval++;
    return why;
  }
}

function unrefTimeout(fn: () => void, ms: number): void {
  const t = setTimeout(fn, ms);
  (t as { unref?: () => void }).unref?.();
}
