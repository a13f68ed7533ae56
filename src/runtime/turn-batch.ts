/**
 * When a finished answer may leave: at once, or with others of the same
 * loop turn. The HTTP edge hands every answer it built through one of these
 * (route.ts); refusals of load shedding bypass it.
 */
export interface AnswerRelease<T> {
  /** `value` itself when it leaves at once, else a promise of it, kept for the turn's batch. */
  hold(value: T): T | Promise<T>;
}

/** Every answer leaves at once (in-process callers, tests, a batch size of 1 or less). */
export const releaseAtOnce: { hold<T>(value: T): T } = { hold: (value) => value };

/** Runs `fn` once the current turn of the event loop is over (setImmediate on the real loop). */
export type AfterTurn = (fn: () => void) => void;

const realAfterTurn: AfterTurn = (fn) => {
  setImmediate(fn);
};

/** How a TurnBatch holds answers. */
export interface TurnBatchOptions {
  /** Most answers held at once; a fuller batch leaves at once (at least 2). */
  readonly max: number;
  /** Answers each turn lets go at once before it holds any (default 4; at least 1). */
  readonly atOnce?: number;
  /** Longest (ms) a batch keeps its first answer: a later answer finding it older lets the batch go (default: no bound). */
  readonly maxHoldMs?: number;
}

/**
 * Answers of one loop turn leave together: the first `atOnce` at once, the
 * ones after them in batches of up to `max` (or once the batch's first has
 * waited `maxHoldMs`, with the next answer), or when the turn is over.
 *
 * Why: with clients on the same host (a model server's sidecar, a load
 * driver), each answer written to a client that sleeps in its poll makes the
 * kernel wake it on the writer's time: on a loopback socket the send runs
 * the receiver's side of TCP and the wake-up, and on this project's virtual
 * machines a cross-core wake-up costs microseconds (perf: ~20% of a
 * saturated server's core under `sock_def_readable`). A slower handler finds
 * the client asleep more often, so every microsecond of lookup work costs
 * nearly two. Written back to back, a turn's answers reach a client that
 * an earlier one woke and that is still busy reading: one wake-up serves the
 * batch. Measured in bench/HISTORY.md ("Answers batched per loop turn").
 *
 * What an answer may wait: the work of at most `max` − 1 later answers of its
 * turn, cut at `maxHoldMs` plus one answer's work, and at most the rest of
 * the turn. A turn of up to `atOnce` answers (a server below its capacity
 * reads a few requests per turn) holds nothing, so their latency is
 * unchanged; a saturated server's turns read dozens, and batch. (A
 * collection that pauses the loop mid-turn also holds the answers finished
 * before it: at most `max` − 1.)
 *
 * Only answers that still leave in one send when written after their
 * request's callback may be held (runtime/late-body.ts: bodies up to
 * CORKED_BYTES, or late bodies); the caller decides.
 */
export class TurnBatch<T> implements AnswerRelease<T> {
  private readonly max: number;
  private readonly atOnce: number;
  private readonly maxHoldMs: number;
  /** Answers the current turn let go at once; 0 while no turn is open. */
  private sentInTurn = 0;
  private held = 0;
  private release: (() => void) | null = null;
  private batch: Promise<void> | null = null;
  /** When the current batch's first answer was held (the clock's ms). */
  private batchSince = 0;
  private readonly endTurn = (): void => {
    this.sentInTurn = 0;
    this.flush();
  };

  constructor(
    options: TurnBatchOptions,
    private readonly afterTurn: AfterTurn = realAfterTurn,
    private readonly now: () => number = () => performance.now(),
  ) {
    const { max, atOnce = 4, maxHoldMs = Number.POSITIVE_INFINITY } = options;
    if (!(Number.isInteger(max) && max >= 2)) throw new Error(`TurnBatch: max must be an integer >= 2, got ${max}`);
    if (!(Number.isInteger(atOnce) && atOnce >= 1)) throw new Error(`TurnBatch: atOnce must be an integer >= 1, got ${atOnce}`);
    if (!(maxHoldMs > 0)) throw new Error(`TurnBatch: maxHoldMs must be > 0, got ${maxHoldMs}`);
    this.max = max;
    this.atOnce = atOnce;
    this.maxHoldMs = maxHoldMs;
  }

  hold(value: T): T | Promise<T> {
    if (this.sentInTurn < this.atOnce) {
      if (this.sentInTurn++ === 0) this.afterTurn(this.endTurn);
      return value;
    }
    if (this.batch === null) {
      this.batch = new Promise<void>((resolve) => (this.release = resolve));
      this.batchSince = this.now();
    }
    const out = this.batch.then(() => value);
    if (++this.held >= this.max || this.now() - this.batchSince >= this.maxHoldMs) this.flush();
    return out;
  }

  /** Answers held now (for tests and metrics). */
  get holding(): number {
    return this.held;
  }

  private flush(): void {
    const release = this.release;
    this.release = null;
    this.batch = null;
    this.held = 0;
    if (release !== null) release();
  }
}
