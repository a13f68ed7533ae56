/** What bounds an IdempotencyWindow, per feature view. */
export interface WindowLimits {
  /** Keys held at most (both generations); default 1,000,000. */
  readonly maxKeys?: number;
  /** Estimated heap bytes held at most (both generations, see keyBytes); default 128 MiB. */
  readonly maxBytes?: number;
}

/** One view's two generations. */
interface Generations {
  current: Set<string>;
  previous: Set<string>;
  currentBytes: number;
  previousBytes: number;
  /** When `current` started, and `previous` (how far back the view remembers). */
  since: number;
  previousSince: number;
}

/** A view's window as it stands: keys and estimated bytes held, and how far back it remembers. */
export interface WindowStats {
  readonly view: string;
  readonly keys: number;
  readonly bytes: number;
  /** Keys seen since this long ago (ms) are remembered; shorter than the window when a cap turned it over early. */
  readonly spanMs: number;
}

export const DEFAULT_WINDOW_MAX_KEYS = 1_000_000;
export const DEFAULT_WINDOW_MAX_BYTES = 128 * 1024 * 1024;

/**
 * Heap bytes a remembered key costs, estimated: ~72 B of set entry and string
 * header plus its characters (1 B each when Latin-1, 2 when not), measured
 * with bun:jsc heapStats over 200k keys of 8–256 characters. Counted as
 * 80 + 2 per UTF-16 unit, an upper bound, so the budget errs towards less memory.
 */
export function keyBytes(key: string): number {
  return 80 + 2 * key.length;
}

/**
 * Idempotency keys seen recently, per feature view (so two sources that carry
 * the same event id for one view dedupe across sources). Two generations of
 * sets per view: keys go into the current one; when it is older than half the
 * window, or holds half of `maxKeys` or of `maxBytes`, the previous generation
 * is dropped and the current one takes its place. A key is therefore
 * remembered for at least half the window (and at most the whole) unless a cap
 * turns generations over sooner, in O(1) per operation with no per-key
 * timestamps — an LRU with TTLs cost ~3 µs per event here, this ~0.1.
 * A turnover forced by a cap is reported (`onCutShort`): from then on a
 * duplicate older than `stats().spanMs` is not caught, which is what bounds the
 * memory of a fast stream or one with long keys.
 * Keys are remembered only after their batch was written, so a failed write
 * is retried rather than mistaken for a duplicate.
 */
export class IdempotencyWindow {
  private readonly views = new Map<string, Generations>();
  private readonly halfWindowMs: number;
  private readonly halfMaxKeys: number;
  private readonly halfMaxBytes: number;

  constructor(
    windowMs: number,
    limits: WindowLimits = {},
    private readonly clock: () => number = Date.now,
    private readonly onCutShort: (view: string) => void = () => {},
  ) {
    this.halfWindowMs = Math.max(1, windowMs / 2);
    this.halfMaxKeys = Math.max(1, Math.floor((limits.maxKeys ?? DEFAULT_WINDOW_MAX_KEYS) / 2));
    this.halfMaxBytes = Math.max(1, Math.floor((limits.maxBytes ?? DEFAULT_WINDOW_MAX_BYTES) / 2));
  }

  has(view: string, key: string): boolean {
    const g = this.views.get(view);
    return g !== undefined && (g.current.has(key) || g.previous.has(key));
  }

  remember(view: string, key: string): void {
    const now = this.clock();
    let g = this.views.get(view);
    if (g === undefined) {
      g = { current: new Set(), previous: new Set(), currentBytes: 0, previousBytes: 0, since: now, previousSince: now };
      this.views.set(view, g);
    }
    if (g.current.has(key)) return;
    const aged = now - g.since >= this.halfWindowMs;
    if (aged || g.current.size >= this.halfMaxKeys || g.currentBytes >= this.halfMaxBytes) {
      if (!aged) this.onCutShort(view);
      g.previous = g.current;
      g.previousBytes = g.currentBytes;
      g.previousSince = g.since;
      g.current = new Set();
      g.currentBytes = 0;
      g.since = now;
    }
    g.current.add(key);
    g.currentBytes += keyBytes(key);
  }

  /** Keys held (both generations, every view). */
  get size(): number {
    let n = 0;
    for (const g of this.views.values()) n += g.current.size + g.previous.size;
    return n;
  }

  /** Each view's keys, estimated bytes and remembered span, for metrics. */
  stats(): WindowStats[] {
    const now = this.clock();
    return [...this.views].map(([view, g]) => ({
      view,
      keys: g.current.size + g.previous.size,
      bytes: g.currentBytes + g.previousBytes,
      spanMs: now - (g.previous.size > 0 ? g.previousSince : g.since),
    }));
  }
}

/**
 * The key an event's idempotency key is remembered under in its view's window:
 * with its source's dedup scope (the source's name unless `dedupScope` says
 * otherwise) and the view's version. Without the scope, two sources feeding
 * one view with their own event ids (1, 2, 3… each) made every id the second
 * used a "duplicate" of the first's, never written (an audit: 20 of 20). By
 * the key alone, a replay to backfill a bumped version was counted duplicate
 * of the old version's events. (One window per view still: the old version's
 * keys age out as new ones come.)
 */
export function scopedKey(scope: string, version: number, key: string): string {
  return `${scope}\u0000${version}\u0000${key}`;
}
