import { LRUCache } from "lru-cache";
import type { StoredRow } from "../kv/kv-node.ts";
import { entryBytes } from "./row-size.ts";

/**
 * One L1 entry. Three kinds share the shape (one hidden class on the hot path):
 * - a row: `row` set, fresh until `freshUntil`, kept as a grace copy until `graceUntil`;
 * - a negative entry: `row` undefined, fresh until `freshUntil` (the origin has no row);
 * - a floor: `row` undefined, never fresh, `floorTs` = the newest event time this pod
 *   knows was acknowledged for the key. Any copy older than the floor (a late L2 read,
 *   a lagging fill) is refused, so a pod never shows a row older than one it was told of.
 */
export interface L1Entry {
  readonly row: StoredRow | undefined;
  readonly freshUntil: number;
  readonly graceUntil: number;
  readonly floorTs: number;
  readonly bytes: number;
}

export interface L1Options {
  readonly maxBytes: number;
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  readonly graceMs: number;
  readonly clock: () => number;
  /** Called once per entry pushed out by the byte budget. */
  readonly onEvict?: () => void;
}

/**
 * The in-process tier: an LRU bounded by estimated bytes (`lru-cache`'s
 * `maxSize`). TTL and grace are checked here against the injected clock,
 * not by lru-cache's own timers, so tests drive time with a fake clock and
 * an expired row stays as a grace copy until its grace window or the byte
 * budget ends it.
 */
export class L1Cache {
  private readonly lru: LRUCache<string, L1Entry>;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly graceMs: number;
  private readonly clock: () => number;

  constructor(options: L1Options) {
    this.ttlMs = options.ttlMs;
    this.negativeTtlMs = options.negativeTtlMs;
    this.graceMs = options.graceMs;
    this.clock = options.clock;
    const onEvict = options.onEvict;
    this.lru = new LRUCache<string, L1Entry>({
      maxSize: options.maxBytes,
      sizeCalculation: (e) => e.bytes,
      ...(onEvict ? { dispose: (_v: L1Entry, _k: string, reason: LRUCache.DisposeReason) => reason === "evict" && onEvict() } : {}),
    });
  }

  /** The entry when it is fresh (a row or a negative entry), else undefined. */
  fresh(key: string, now: number): L1Entry | undefined {
    const e = this.lru.get(key);
    return e !== undefined && now < e.freshUntil ? e : undefined;
  }

  /** Any entry, fresh or not, without touching recency (grace copies and floors). */
  peek(key: string): L1Entry | undefined {
    return this.lru.peek(key);
  }

  /** A row still inside its grace window, for serving when the origin cannot answer. */
  graceRow(key: string, now: number): StoredRow | undefined {
    const e = this.lru.peek(key);
    return e?.row !== undefined && now < e.graceUntil ? e.row : undefined;
  }

  /** The floor a copy must reach to be shown (-Infinity when none is known). */
  floorOf(key: string): number {
    const e = this.lru.peek(key);
    if (e === undefined) return Number.NEGATIVE_INFINITY;
    return e.row !== undefined ? e.row.ts : e.floorTs;
  }

  /**
   * Stores what a read found (a row, or undefined for "the origin has none").
   * Refuses anything older than the row or floor already held: a late fill
   * never replaces a newer row. Returns whether it was stored.
   */
  fill(key: string, row: StoredRow | undefined): boolean {
    const held = this.lru.peek(key);
    if (held !== undefined) {
      const heldTs = held.row !== undefined ? held.row.ts : held.floorTs;
      if (row === undefined ? heldTs > Number.NEGATIVE_INFINITY : row.ts < heldTs) return false;
    }
    const now = this.clock();
    if (row === undefined) {
      const until = now + this.negativeTtlMs;
      this.lru.set(key, { row: undefined, freshUntil: until, graceUntil: until, floorTs: Number.NEGATIVE_INFINITY, bytes: entryBytes(key, undefined) });
    } else {
      const fresh = now + this.ttlMs;
      this.lru.set(key, { row, freshUntil: fresh, graceUntil: fresh + this.graceMs, floorTs: row.ts, bytes: entryBytes(key, row) });
    }
    return true;
  }

  /**
   * Another pod acknowledged a write at `ts`: unless the held row is at least
   * that new, replace it by a floor so the next read fetches the newer row.
   * `evenIfAbsent` sets the floor for a key not held (a read of it is in flight
   * and must not fill what it found). Returns whether an entry changed.
   */
  supersede(key: string, ts: number, evenIfAbsent = false): boolean {
    const held = this.lru.peek(key);
    if (held === undefined && !evenIfAbsent) return false;
    const heldTs = held === undefined ? Number.NEGATIVE_INFINITY : held.row !== undefined ? held.row.ts : held.floorTs;
    if (held !== undefined && heldTs >= ts && held.row !== undefined) return false;
    const until = this.clock() + this.ttlMs + this.graceMs;
    this.lru.set(key, { row: undefined, freshUntil: 0, graceUntil: until, floorTs: Math.max(ts, heldTs), bytes: entryBytes(key, undefined) });
    return true;
  }

  has(key: string): boolean {
    return this.lru.has(key);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  /** Drops every entry of a view (all versions): a walk over L1, run only on an admin invalidation or a registry change. */
  dropView(view: string): number {
    const prefix = `${view}@`;
    let n = 0;
    for (const key of this.lru.keys()) {
      if (key.startsWith(prefix)) {
        this.lru.delete(key);
        n++;
      }
    }
    return n;
  }

  clear(): number {
    const n = this.lru.size;
    this.lru.clear();
    return n;
  }

  get size(): number {
    return this.lru.size;
  }

  /** Estimated bytes held; never above the budget. */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  get maxBytes(): number {
    return this.lru.maxSize;
  }
}
