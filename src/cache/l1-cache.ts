import { LRUCache } from "lru-cache";
import type { StoredRow } from "../kv/kv-node.ts";
import { encodeRow } from "../kv/row-codec.ts";
import { unpackValues } from "./packed-row.ts";
import { entryBytes } from "./row-size.ts";

/**
 * One L1 entry. Three kinds share the shape (one hidden class on the hot path):
 * - a row: `raw` set, fresh until `freshUntil`, kept as a grace copy until `graceUntil`;
 * - a negative entry: `raw` undefined, fresh until `freshUntil` (the origin has no row);
 * - a floor: `raw` undefined, never fresh, `ts` = the newest event time this pod
 *   knows was acknowledged for the key. Any copy older than the floor (a late L2 read,
 *   a lagging fill) is refused until `graceUntil` (no read lags longer), so a pod never
 *   shows a row older than one it was told of.
 *
 * A row is held as its stored bytes (row-codec: event time, then the
 * MessagePack values) in a compact typed array (row-codec's encodeRow, read
 * through packed-row.ts), not as value
 * objects. Raw reads (CacheTier.rawNow) hand the bytes to the answer writers
 * as the embedded store's are, and an entry is two objects whatever the row
 * holds. Held decoded, 100k rows of 10 features were a graph of ~20 objects
 * each, and a 100-entity lookup of L1 hits walked it: 1.9x the embedded
 * store's cost in process, 1.5x since (12-05, ninth session).
 */
export interface L1Entry {
  /** The row's stored bytes, packed (a row), or undefined (a negative entry or a floor). */
  readonly raw: Uint8Array | undefined;
  /** The row's event time; a floor's floor; -Infinity for a negative entry. */
  readonly ts: number;
  /** Set to 0 by expireAll (a feed gap): the row stays a grace copy, and no longer refuses older fills (fill). */
  freshUntil: number;
  readonly graceUntil: number;
  /** Estimated bytes (row-size.ts), for the byte budget. */
  readonly bytes: number;
  /** When the entry last moved to the recent end of the LRU order (L1Cache.fresh). */
  usedAt: number;
  /** A hit has claimed its refresh ahead of expiry (L1Cache.claimRefresh): no other hit starts one. */
  refreshing: boolean;
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

/** Share of the TTL a refresh (a fill over a fresh entry) may be shortened by, at random (L1Cache.jitter). */
const TTL_JITTER = 0.1;

/** Share of the TTL any other fill may be shortened by: a first fill, or one over an expired entry, a floor or a grace copy (L1Cache.fill). */
const FIRST_FILL_JITTER = 0.5;

/** Share of the TTL before expiry in which a hit refreshes its entry (L1Cache.claimRefresh). */
const REFRESH_SHARE = 0.25;

/**
 * Whether `held` keeps a fill of `row` (undefined: the origin has none) out,
 * as older than what this pod holds or was told of.
 * - A floor refuses what is older than it until its grace window ends (TTL +
 *   grace after the write it stands for): no read lags that long. Kept for
 *   good, a floor for a write that never landed (a failed push is published:
 *   another shard's share may be stored) made every lookup of the key an
 *   origin read for as long as L1 had room.
 * - A negative entry refuses nothing.
 * - A row refuses older rows, and "none" while it is fresh: "none" replaces
 *   an expired row (a delete this pod heard left a floor, so this one it
 *   missed: a feed gap expires every row). Kept, the gone row was read from
 *   the origin on every lookup and served as a grace copy.
 * - A row a gap expired (freshUntil 0) refuses nothing: what the origin holds
 *   after a gap is not known to be newer (a shard restored from a backup),
 *   and cleared, as L1 was by a gap until 12-07, it would have been taken.
 */
function refuses(held: L1Entry, row: StoredRow | undefined, now: number): boolean {
  if (held.raw === undefined) return held.ts > Number.NEGATIVE_INFINITY && now < held.graceUntil && (row === undefined || row.ts < held.ts);
  if (held.freshUntil === 0) return false;
  return row === undefined ? now < held.freshUntil : row.ts < held.ts;
}

/**
 * The in-process tier: an LRU bounded by estimated bytes (`lru-cache`'s
 * `maxSize`). A fill is fresh for its TTL less up to a half, a refresh for
 * its TTL less up to a tenth (jitter, below).
 * TTL and grace are checked here against the injected clock,
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
  private readonly recencyMs: number;

  constructor(options: L1Options) {
    this.ttlMs = options.ttlMs;
    this.recencyMs = options.ttlMs / 10;
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

  /**
   * The entry when it is fresh (a row or a negative entry), else undefined.
   * Recency is kept to `recencyMs` (a tenth of the TTL): a hit moves its
   * entry to the recent end of the LRU order only when it last moved longer
   * ago than that. lru-cache's `get` moves it on every hit, relinking it and
   * both neighbours in its index arrays: with 100k entries that is cache
   * misses for ~40% of a hit's cost (890 against 500 ns for `peek`,
   * measured 12-05), paid 100 times by a 100-entity lookup. Eviction order
   * is then exact to within `recencyMs`, which for entries that live a whole
   * TTL changes nothing that matters.
   */
  fresh(key: string, now: number): L1Entry | undefined {
    const e = this.lru.peek(key);
    if (e === undefined || now >= e.freshUntil) return undefined;
    if (now - e.usedAt >= this.recencyMs) {
      e.usedAt = now;
      this.lru.get(key);
    }
    return e;
  }

  /**
   * Should the hit that found `e` (fresh) have its key read again now, in the
   * background? Yes once, for the first hit in the last quarter of the
   * entry's time to live (of the TTL for a row, of the negative TTL for a
   * miss): the entry is claimed, so later hits do not ask again. A key read
   * at least that often is then never found expired, and its lookups keep to
   * L1's synchronous path (CacheTier.refreshAhead). A quarter, not a tenth:
   * with keys read every few seconds (100k keys at 15k single lookups a
   * second: each every ~6.7 s) a 6 s window let ~40% of a burst's rows
   * expire into misses on the request path, all within the burst's 6 s of
   * jitter; 15 s leaves ~10%, and the refreshes of rows that came due
   * together spread over the quarter instead of its tenth. The price is an
   * earlier re-read: a hot key is read about once per 45–60 s instead of 54–60 s.
   */
  claimRefresh(e: L1Entry, now: number): boolean {
    if (e.refreshing || e.freshUntil - now > (e.raw === undefined ? this.negativeTtlMs : this.ttlMs) * REFRESH_SHARE) return false;
    e.refreshing = true;
    return true;
  }

  /** An entry's row as value objects (decoded from its bytes on each call), or undefined for a negative entry or a floor. */
  static rowOf(e: L1Entry): StoredRow | undefined {
    return e.raw === undefined ? undefined : { ts: e.ts, values: unpackValues(e.raw) };
  }

  /** Any entry, fresh or not, without touching recency (grace copies and floors). */
  peek(key: string): L1Entry | undefined {
    return this.lru.peek(key);
  }

  /** A row still inside its grace window, for serving when the origin cannot answer. */
  graceRow(key: string, now: number): StoredRow | undefined {
    const e = this.lru.peek(key);
    return e !== undefined && now < e.graceUntil ? L1Cache.rowOf(e) : undefined;
  }

  /** The floor a copy must reach to be shown (-Infinity when none is known; a floor past its grace window is none, as in fill). */
  floorOf(key: string): number {
    const e = this.lru.peek(key);
    if (e === undefined || (e.raw === undefined && this.clock() >= e.graceUntil)) return Number.NEGATIVE_INFINITY;
    return e.ts;
  }

  /**
   * Stores what a read found (a row, or undefined for "the origin has none").
   * Refuses anything older than the row or floor already held: a late fill
   * never replaces a newer row (`refuses`, above, for the exceptions). Returns whether it was stored. `ttlCapMs`
   * shortens its life (while the change feed is not heard: CacheTier); such
   * an entry expires and is read again on demand, never refreshed ahead.
   *
   * A fill that replaces a fresh entry (a refresh ahead) is fresh for its TTL
   * less up to a tenth; any other (the key's first fill, or one after its
   * entry expired or became a floor) less up to a half. Rows filled together
   * are first fills, and they came due for refresh together: 100k rows filled
   * within a second came due over their 6 s of jitter, and a lookup load
   * that reads each key every few seconds claimed ~10k refreshes a second
   * for ~5 s (12-06, the bench's Redis rig at 20k single lookups/s;
   * `quiver_cache_refreshed_keys_total`), with the core saturated. Spread
   * over half the TTL, the same cohort comes due over ~30 s; the refreshes
   * then keep that spread, so only first fills pay the shorter life (one
   * earlier re-read per key), not every refresh.
   */
  fill(key: string, row: StoredRow | undefined, ttlCapMs?: number): boolean {
    const held = this.lru.peek(key);
    const now = this.clock();
    if (held !== undefined && refuses(held, row, now)) return false;
    const share = held !== undefined && now < held.freshUntil ? TTL_JITTER : FIRST_FILL_JITTER;
    const ttlMs = ttlCapMs === undefined ? this.ttlMs : Math.min(this.ttlMs, ttlCapMs);
    // A capped entry is never refreshed ahead (marked as if claimed): short-lived, each hit would claim a re-read.
    const capped = ttlCapMs !== undefined;
    if (row === undefined) {
      const negativeTtlMs = ttlCapMs === undefined ? this.negativeTtlMs : Math.min(this.negativeTtlMs, ttlCapMs);
      const until = now + negativeTtlMs - this.jitter(negativeTtlMs, share);
      this.lru.set(key, { raw: undefined, ts: Number.NEGATIVE_INFINITY, freshUntil: until, graceUntil: until, bytes: entryBytes(key, 0), usedAt: now, refreshing: capped });
    } else {
      const raw = encodeRow(row);
      const fresh = now + ttlMs - this.jitter(ttlMs, share);
      this.lru.set(key, { raw, ts: row.ts, freshUntil: fresh, graceUntil: fresh + this.graceMs, bytes: entryBytes(key, raw.length), usedAt: now, refreshing: capped });
    }
    return true;
  }

  /**
   * Up to `share` of `ttl`, drawn per fill. Rows filled together (a start-up
   * warm-up, the refill after a feed gap expired L1 or an invalidation cleared it, a
   * burst of new keys) would otherwise expire together one TTL later, and the
   * refill after that would line them up again: a storm of origin reads every
   * TTL. A fixed-seed xorshift, so tests on a fake clock stay deterministic.
   */
  private jitter(ttl: number, share: number): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x;
    return ttl * share * ((x >>> 0) / 4294967296);
  }

  private seed = 0x9e3779b9 | 0;

  /**
   * Another pod acknowledged a write at `ts`: unless the held row is at least
   * that new, replace it by a floor so the next read fetches the newer row.
   * `evenIfAbsent` sets the floor for a key not held (a read of it is in flight
   * and must not fill what it found). Returns whether an entry changed.
   */
  supersede(key: string, ts: number, evenIfAbsent = false): boolean {
    const held = this.lru.peek(key);
    if (held === undefined && !evenIfAbsent) return false;
    const heldTs = held === undefined ? Number.NEGATIVE_INFINITY : held.ts;
    if (held !== undefined && heldTs >= ts && held.raw !== undefined) return false;
    const now = this.clock();
    const until = now + this.ttlMs + this.graceMs;
    this.lru.set(key, { raw: undefined, ts: Math.max(ts, heldTs), freshUntil: 0, graceUntil: until, bytes: entryBytes(key, 0), usedAt: now, refreshing: false });
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

  /**
   * Nothing held is fresh any more; rows stay as grace copies until their
   * grace windows end (a feed gap: what was missed is unknown, so every key
   * is read again, but a shard that cannot answer still gets its rows' copies,
   * marked stale, instead of defaults). Floors stay floors; negative entries
   * become inert. Returns the entries held.
   */
  expireAll(): number {
    for (const e of this.lru.values()) e.freshUntil = 0;
    return this.lru.size;
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
