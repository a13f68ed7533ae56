import type { ChangeEvent, ChangeFeed, ChangeListener, InvalidationScope } from "../feed/change-feed.ts";
import type { KeyBatch } from "../kv/key-batch.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, RawReader, RawRowSink, ReadContext, ReadSlot, ReadsNow, ScanPage, StoredRow, ThroughRows } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { encodeRow, ROW_HEADER_BYTES } from "../kv/row-codec.ts";
import { storeMayHold } from "../kv/storage-errors.ts";
import type { CacheMetrics } from "./cache-metrics.ts";
import { L1Cache, type L1Entry } from "./l1-cache.ts";
import { RowScratch } from "./packed-row.ts";
import { L2Repair } from "./l2-repair.ts";
import { L2_NEGATIVE, L2_NOT_ASKED, type L2Tier, type L2Write } from "./l2-slot.ts";
import { type Flight, fillable, InFlight } from "./single-flight.ts";

/** Most keys one refresh flight reads (keys claimed beyond it wait for the flight to land). */
const REFRESH_BATCH = 512;
/** Keys removed from L2 per repair call (l2-repair.ts), and the wait before a repair is tried, doubling while L2 cannot take it. */
const REPAIR_BATCH = 1_000;
const REPAIR_FIRST_MS = 100;
const REPAIR_MAX_MS = 5_000;

export interface CacheTierOptions {
  /** The in-process tier; absent = L1 off. */
  readonly l1?: L1Cache;
  /** The shared Redis tier; absent = L2 off. */
  readonly l2?: L2Tier;
  /** Change events from other pods drop superseded L1 entries; invalidations drop views. */
  readonly feed: ChangeFeed;
  readonly metrics: CacheMetrics;
  readonly clock: () => number;
  /**
   * How long keys claimed for a refresh ahead gather before their flight
   * leaves (ms; CacheTier.refreshAhead). Absent or 0: at the end of the
   * claiming turn.
   */
  readonly refreshGatherMs?: number;
  /**
   * Longest an L1 entry filled while the change feed is not heard stays
   * fresh (ms; default 1000): it cannot hear of other pods' writes, so what
   * it holds is trusted only this long (it was trusted for the whole TTL).
   */
  readonly feedDownTtlMs?: number;
  /**
   * Whether what this pod reads may fill L2 (default: always). False while
   * its ring is not where the keys are (a topology change it has not joined):
   * its misses, written to L2 as negative entries, made a ready pod answer
   * 347 of 2,000 existing keys NOT_FOUND.
   */
  readonly sharedFills?: () => boolean;
  /** Runs `fn` in `ms` and answers how to cancel it (default: setTimeout); tests pass their own. */
  readonly schedule?: (fn: () => void, ms: number) => () => void;
}

function laterByTimer(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
}

/** What /readyz and the admin route show about the tiers. */
export interface CacheState {
  readonly l1: { readonly entries: number; readonly bytes: number; readonly maxBytes: number } | "off";
  readonly l2: { readonly address: string; readonly connected: boolean; readonly error?: string } | "off";
  /** Keys being read below L1, and keys claimed for a refresh this turn (about to be). */
  readonly inFlight: number;
  /** Writes L2 did not take, whose old copies are skipped until removed from it ("all" past the bound): l2-repair.ts. */
  readonly l2RepairPending: number | "all";
}

/**
 * L1 (in-process LRU) + L2 (shared Redis) in front of the origin, as one KvNode.
 *
 * Read path: L1 for every key (synchronously, via `rawNow` as stored bytes or
 * `getManyNow` as rows, when all hit);
 * the misses join or start a single-flight read that does one L2 MGET and one
 * origin batch for what L2 lacks. L1 is filled before answering; L2 fills run
 * in the background. Where the origin yields UNAVAILABLE, an L1 grace copy
 * (past TTL, inside the grace window) is served marked `stale`.
 *
 * Last write wins through the caches: L1 never takes a copy older than what it
 * holds or than the newest write it heard of (a floor), and L2 takes writes
 * only through a compare-event-time script. UNAVAILABLE is never cached.
 */
export class CacheTier implements KvNode, ChangeListener {
  readonly id: string;
  readonly readsNow: ReadsNow;
  /**
   * With L1: its rows as stored bytes. `readRaw` answers when every key of a
   * read is fresh in L1, else -1; `readThrough` makes one pass over L1 and
   * reads what it lacks through L2 and the origin. Without L1: none.
   */
  readonly rawNow: RawReader | undefined;
  readonly getManyNow: (keys: readonly string[]) => ReadSlot[] | undefined;
  private readonly l1: L1Cache | undefined;
  private readonly l2: L2Tier | undefined;
  private readonly feed: ChangeFeed;
  private readonly m: CacheMetrics;
  private readonly clock: () => number;
  private readonly inFlight = new InFlight();
  /** Background L2 fills; `close` waits for them. */
  private readonly tasks = new Set<Promise<unknown>>();
  /** Bumped by every invalidation and gap: a read begun before one must not fill L1 after it. */
  private epoch = 0;
  /** Keys whose L2 copy may be older than the origin (a write-through that failed). */
  private readonly repair = new L2Repair();
  private repairTimer: (() => void) | undefined;
  private repairDelayMs = REPAIR_FIRST_MS;
  private repairing = false;
  private readonly feedDownTtlMs: number;
  private readonly sharedFills: () => boolean;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly origin: KvNode,
    options: CacheTierOptions,
  ) {
    this.id = `cache(${origin.id})`;
    this.l1 = options.l1;
    this.l2 = options.l2;
    this.feed = options.feed;
    this.m = options.metrics;
    this.clock = options.clock;
    this.refreshGatherMs = options.refreshGatherMs ?? 0;
    this.feedDownTtlMs = options.feedDownTtlMs ?? 1000;
    this.sharedFills = options.sharedFills ?? (() => true);
    this.schedule = options.schedule ?? laterByTimer;
    this.readsNow = this.l1 ? "sometimes" : "never";
    this.getManyNow = this.l1 ? this.l1Now(this.l1) : () => undefined;
    this.rawNow = this.l1 ? this.l1Raw(this.l1) : undefined;
    this.unsubscribe = this.feed.subscribe(this);
    this.l2?.onGenerationRaised((scope) => this.drop(scope));
  }

  /**
   * The all-keys-fresh-in-L1 path as bytes: each row goes to `sink` as L1
   * holds it (no decoding, no value objects); a negative entry is reported
   * as absent. One key that is not fresh makes the whole read answer -1
   * before anything is counted (rows already handed over are the caller's to
   * drop), and the caller takes `getMany`, which counts the hits and misses.
   */
  private l1Raw(l1: L1Cache): RawReader {
    const clock = this.clock;
    const hits = this.m.l1Hits;
    // Each row is copied here to be read: L1 keeps it packed, without a DataView of its own (packed-row.ts).
    const scratch = new RowScratch();
    const nowRows = new HeldRows(scratch, this.readMissesOf);
    return {
      readRaw: (keys: KeyBatch, picks: Int32Array, from: number, to: number, sink: RawRowSink): number => {
        const now = clock();
        scratch.reset();
        let found = 0;
        let due: string[] | undefined;
        for (let j = from; j < to; j++) {
          const i = picks[j]!;
          const key = keys.keyString(i);
          const e = l1.fresh(key, now);
          if (e === undefined) {
            if (due !== undefined) this.refreshAhead(due);
            return -1;
          }
          if (l1.claimRefresh(e, now)) due = appended(due, key);
          if (e.raw === undefined) continue;
          reportPacked(scratch, sink, i, e.raw, e.ts);
          found++;
        }
        hits.inc(to - from);
        if (due !== undefined) this.refreshAhead(due);
        return found;
      },
      readThrough: (keys: KeyBatch) => this.readThrough(l1, keys, nowRows),
    };
  }

  /**
   * RawReader.readThrough: one pass over L1 keeps each fresh entry (its
   * packed bytes); keys not fresh are read by `readRest` as `getMany` reads
   * its misses (L2, the origin, single-flight, L1 filled); the rows are
   * reported from L1's bytes and, for those read, packed as L1 packs them.
   * A 100-entity lookup with some keys expired or never read thus costs one
   * probe per key and the answer writer's pass over bytes, where the decoding
   * path (getMany, a LookupResult, its encoder) probed them again and decoded
   * every hit into value objects. A pass that found every key answers with
   * `nowRows`, reused (the caller reports before the next read).
   */
  private readThrough(l1: L1Cache, keys: KeyBatch, nowRows: HeldRows): ThroughRows {
    const n = keys.count;
    const now = this.clock();
    const pass = this.pass;
    let missKeys: string[] | undefined;
    let missAt: number[] | undefined;
    let due: string[] | undefined;
    let found = 0;
    for (let i = 0; i < n; i++) {
      const key = keys.keyString(i);
      const e = l1.fresh(key, now);
      pass[i] = e;
      if (e === undefined) {
        if (missKeys === undefined || missAt === undefined) {
          missKeys = [];
          missAt = [];
        }
        missKeys.push(key);
        missAt.push(i);
        continue;
      }
      if (l1.claimRefresh(e, now)) due = appended(due, key);
      if (e.raw !== undefined) found++;
    }
    if (due !== undefined) this.refreshAhead(due);
    const missing = missKeys === undefined ? 0 : missKeys.length;
    this.m.l1Hits.inc(n - missing);
    if (missing === 0) return nowRows.hold(pass, n, found);
    this.m.l1Misses.inc(missing);
    // The pass goes with the rows that outlive this call; the next read gets a new one.
    this.pass = [];
    return new HeldRows(nowRows.scratch, this.readMissesOf).hold(pass, n, found, missKeys, missAt);
  }

  /** readThrough's pass over L1: each key's fresh entry, or undefined. */
  private pass: (L1Entry | undefined)[] = [];
  private readonly readMissesOf: ReadMisses = (keys, missPos, out, ctx) => this.readMisses(keys, missPos, out, ctx);

  /** The all-keys-hit-L1 path: no promise, no allocation beyond the answer. */
  private l1Now(l1: L1Cache): (keys: readonly string[]) => ReadSlot[] | undefined {
    const clock = this.clock;
    const hits = this.m.l1Hits;
    return (keys) => {
      const now = clock();
      const found = new Array<L1Entry>(keys.length);
      let due: string[] | undefined;
      for (let i = 0; i < keys.length; i++) {
        const e = l1.fresh(keys[i]!, now);
        if (e === undefined) {
          if (due !== undefined) this.refreshAhead(due);
          return undefined;
        }
        if (l1.claimRefresh(e, now)) due = appended(due, keys[i]!);
        found[i] = e;
      }
      hits.inc(keys.length);
      if (due !== undefined) this.refreshAhead(due);
      // Decoded only once every key is known to be fresh: a miss late in the batch wastes no decoding.
      const out = new Array<ReadSlot>(keys.length);
      for (let i = 0; i < keys.length; i++) out[i] = L1Cache.rowOf(found[i]!);
      return out;
    };
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    const n = keys.length;
    if (n === 0) return [];
    const out = new Array<ReadSlot>(n);
    const l1 = this.l1;
    const missPos: number[] = [];
    if (l1) {
      const now = this.clock();
      let due: string[] | undefined;
      for (let i = 0; i < n; i++) {
        const e = l1.fresh(keys[i]!, now);
        if (e === undefined) missPos.push(i);
        else {
          if (l1.claimRefresh(e, now)) due = appended(due, keys[i]!);
          out[i] = L1Cache.rowOf(e);
        }
      }
      if (due !== undefined) this.refreshAhead(due);
      this.m.l1Hits.inc(n - missPos.length);
      this.m.l1Misses.inc(missPos.length);
      if (missPos.length === 0) return out;
    } else {
      for (let i = 0; i < n; i++) missPos.push(i);
    }
    await this.readMisses(keys, missPos, out, ctx);
    return out;
  }

  /**
   * Reads `keys[pos]` for each `pos` of `missPos` through the tiers below L1
   * and writes its slot to `out[pos]`: the row, undefined (no row), an L1
   * grace copy marked stale where the origin could not answer, else
   * UNAVAILABLE (and the shards that failed go to `ctx.degraded`). Joins the
   * reads in flight for these keys; one flight reads the rest.
   */
  private async readMisses(keys: readonly string[], missPos: readonly number[], out: ReadSlot[], ctx: ReadContext | undefined, again = false): Promise<void> {
    const l1 = this.l1;
    const deadline = ctx?.deadline ?? Number.POSITIVE_INFINITY;
    // Join reads in flight; start one flight for the rest.
    const mine: string[] = [];
    for (const pos of missPos) {
      const key = keys[pos]!;
      if (!this.inFlight.has(key)) mine.push(key);
    }
    if (mine.length < missPos.length) this.m.coalesced.inc(missPos.length - mine.length);
    if (mine.length > 0) this.inFlight.start(mine, (f) => this.fly(f, ctx), deadline);
    const refs = missPos.map((pos) => this.inFlight.get(keys[pos]!)!);
    let first: Flight | undefined;
    let several = false;
    let latest = Number.NEGATIVE_INFINITY;
    for (const r of refs) {
      if (first === undefined) first = r.flight;
      else if (r.flight !== first) several = true;
      if (r.flight.deadline > latest) latest = r.flight.deadline;
    }
    const landed = several ? Promise.all([...new Set(refs.map((r) => r.flight.done))]) : first!.done;
    // A flight joined that reads past this request's budget (it began with a longer one): waited for no longer than
    // the budget. Joiners waited for the read they joined: 3 s on a hung shard for a lookup with 50 ms.
    if (latest > deadline) await untilDeadline(landed, deadline);
    else await landed;

    const now = this.clock();
    let degradedFrom: Flight | undefined;
    let retry: number[] | undefined;
    for (let j = 0; j < missPos.length; j++) {
      const pos = missPos[j]!;
      const { flight, index } = refs[j]!;
      const slot = flight.slots === undefined ? UNAVAILABLE : flight.slots[index];
      if (slot !== UNAVAILABLE) {
        out[pos] = slot;
        continue;
      }
      // The read joined gave up at its own, earlier deadline (a request with a tighter budget began it): this one
      // reads the key itself within what is left of its budget, once. Not after any other failure (a shard down,
      // its breaker open): every joiner's second read doubled the calls to a failing shard.
      if (!again && flight.slots !== undefined && flight.endedAt >= flight.deadline - DEADLINE_SLACK_MS && flight.deadline < deadline && performance.now() < deadline) {
        retry ??= [];
        retry.push(pos);
        continue;
      }
      const grace = l1?.graceRow(keys[pos]!, now);
      if (grace !== undefined) {
        out[pos] = staleCopy(grace);
        this.m.staleServed.inc();
      } else {
        out[pos] = UNAVAILABLE;
      }
      // Either way the shards that could not answer are named (an answer of grace copies alone named none); a read
      // still going when the budget ran out has named none yet: the origin is.
      if (degradedFrom !== flight) {
        degradedFrom = flight;
        if (ctx?.degraded) {
          if (flight.slots === undefined) ctx.degraded.push(this.origin.id);
          else ctx.degraded.push(...flight.degraded);
        }
      }
    }
    if (retry !== undefined) await this.readMisses(keys, retry, out, ctx, true);
  }

  /**
   * Reads `keys` again in the background, as a miss would (L2, then the
   * origin, then the fills; single-flight, so a key already in flight is
   * left to that read), for hits that found them close to expiry
   * (L1Cache.claimRefresh). Their lookups were answered from L1 meanwhile;
   * the refreshed rows keep the next ones there. A refresh that fails leaves
   * the entry to expire as it would have. Bounded as any origin read is (the
   * shards' own budget); close() waits for it.
   *
   * The keys of a turn of the event loop are read together (one flight at
   * the turn's end, at most REFRESH_BATCH keys), not one flight per hit:
   * rows filled together (a pod's start-up, a refill after a gap, a burst of
   * traffic) come due together, and single-entity lookups then claimed one
   * flight each. Measured on the bench's Redis rig (12-05, 100k rows filled
   * in 3 s, single lookups at 15k/s open loop across their expiry): 51.6k
   * refreshes as 51.6k flights within ~10 s, the core saturated, p99 253 ms
   * and 23.8k lookups shed.
   *
   * And one refresh flight at a time: the keys claimed while one is out wait
   * for it and leave together when it lands. A claimed entry is fresh for a
   * quarter of its TTL yet, so a few milliseconds' wait costs nothing, and
   * background reads neither pile up nor take more than one round trip's
   * share of an origin that has become slow. Where round trips are short it
   * changes little: on the same rig (18k single lookups/s) a flight landed
   * before the next turn ended, and ~10k refreshes a second still went as
   * ~4.5k flights of 2-3 keys, with or without it. A key a lookup has read
   * again meanwhile (its entry refilled, no longer claimed) or that L1 has
   * dropped is not read a second time.
   */
  private refreshAhead(keys: readonly string[]): void {
    for (const k of keys) this.refreshDue.push(k);
    if (this.refreshing) return;
    this.scheduleRefresh();
  }

  /**
   * The next refresh flight leaves `refreshGatherMs` from now (or at the end
   * of this turn without one), with the keys claimed until then.
   *
   * Where round trips are short a flight landed before the next turn ended,
   * so with single-entity lookups each flight carried the few keys of a turn
   * or two: 100k rows filled together and spread over half their TTL came
   * due at ~5.4k keys a second, in flights of ~15 keys, and the per-flight
   * work (a read per shard, a wake-up of each redis-server, the replies'
   * turns) made a closed loop of single lookups answer 25.1-25.3k a second
   * against 25.7-29.8k with flights gathered over 50 ms (~100 keys each),
   * and 11.6-12.7k against 15.3-16.1k with the servers' order swapped (12-06,
   * the Redis rig, two servers warmed together, three alternating pairs
   * each). A claimed entry is fresh for up to a quarter of its TTL yet: a
   * 50 ms wait costs it nothing.
   */
  private scheduleRefresh(): void {
    if (this.refreshFlush !== undefined || this.closed) return;
    if (this.refreshGatherMs > 0) {
      this.refreshFlush = this.schedule(this.flushRefreshFn, this.refreshGatherMs);
    } else {
      const immediate = setImmediate(this.flushRefreshFn);
      this.refreshFlush = () => clearImmediate(immediate);
    }
  }

  private readonly flushRefreshFn = (): void => this.flushRefresh();

  /** Starts one flight for up to REFRESH_BATCH keys due for a refresh that no read has in flight; the rest wait for it to land. */
  private flushRefresh(): void {
    this.refreshFlush = undefined;
    if (this.refreshing || this.closed) return;
    const due = this.refreshDue;
    const l1 = this.l1;
    const mine: string[] = [];
    const taken = new Set<string>();
    let i = 0;
    for (; i < due.length && mine.length < REFRESH_BATCH; i++) {
      const k = due[i]!;
      if (taken.has(k) || this.inFlight.has(k) || l1?.peek(k)?.refreshing !== true) continue;
      taken.add(k);
      mine.push(k);
    }
    this.refreshDue = i === due.length ? [] : due.slice(i);
    if (mine.length === 0) return;
    this.m.refreshed.inc(mine.length);
    this.refreshing = true;
    const landed = this.inFlight.start(mine, (f) => this.fly(f, undefined)).done.finally(() => {
      this.refreshing = false;
      if (this.refreshDue.length > 0) this.scheduleRefresh();
    });
    this.track(landed);
  }

  /** Keys claimed for a refresh, read together by flushRefresh once no refresh flight is out. */
  private refreshDue: string[] = [];
  /** Cancels the scheduled start of the next refresh flight; undefined when none is scheduled. */
  private refreshFlush: (() => void) | undefined;
  private readonly refreshGatherMs: number;
  private readonly schedule: (fn: () => void, ms: number) => () => void;
  /** A refresh flight is out. */
  private refreshing = false;
  private closed = false;

  /** One flight: L2 for all its keys, the origin for what L2 lacks, then fills. */
  private async fly(flight: Flight, ctx: ReadContext | undefined): Promise<void> {
    const keys = flight.keys;
    const n = keys.length;
    const slots = new Array<ReadSlot>(n).fill(UNAVAILABLE);
    const epoch = this.epoch;
    // Read while the change feed is not heard, a row is trusted only briefly (fillTtlCap), also when the feed is heard
    // by the time it lands: a write elsewhere before the first subscription is never announced here, nor a gap.
    const heardAtStart = this.feed.hearing;
    const l1 = this.l1;
    const l2 = this.l2;
    try {
      let originKeys: readonly string[] = keys;
      let originPos: number[] | undefined;
      const repair = this.repair.pending ? this.repair : undefined;
      if (l2 && !repair?.wholeTier) {
        const start = performance.now();
        const got = await l2.read(keys);
        this.m.l2Latency.observe((performance.now() - start) / 1000);
        if (got === undefined || got === L2_NOT_ASKED) {
          // Not asked (generations being re-read, a hung L2 between probes) is a miss, not an error: every
          // invalidation elsewhere counted L2 read errors on a healthy L2.
          if (got === undefined) this.m.l2ReadErrors.inc();
          this.m.l2Misses.inc(n);
        } else {
          const rest: string[] = [];
          originPos = [];
          for (let i = 0; i < n; i++) {
            const g = got[i];
            const floor = repair?.suspect(keys[i]!) ? Number.POSITIVE_INFINITY : l1 ? l1.floorOf(keys[i]!) : Number.NEGATIVE_INFINITY;
            if (g === L2_NEGATIVE && floor === Number.NEGATIVE_INFINITY) slots[i] = undefined;
            else if (g !== undefined && g !== L2_NEGATIVE && g.ts >= floor) slots[i] = g;
            else {
              rest.push(keys[i]!);
              originPos.push(i);
            }
          }
          this.m.l2Hits.inc(n - rest.length);
          this.m.l2Misses.inc(rest.length);
          originKeys = rest;
        }
      }
      const l2Fill: L2Write[] = [];
      if (originKeys.length > 0) {
        this.m.originReads.inc();
        this.m.originKeys.inc(originKeys.length);
        let got: readonly ReadSlot[];
        try {
          got = await this.origin.getMany(originKeys, { signal: ctx?.signal, deadline: ctx?.deadline, degraded: flight.degraded });
        } catch {
          flight.degraded.push(this.origin.id);
          got = [];
        }
        // A key a write superseded while it was read: the row found may predate the write, and L2's
        // compare-event-time rule cannot refuse it where the writer removed L2's copy (a push with ignored rows).
        for (let j = 0; j < originKeys.length; j++) {
          const s = j < got.length ? got[j] : UNAVAILABLE;
          slots[originPos ? originPos[j]! : j] = s;
          if (l2 && s !== UNAVAILABLE && fillable(flight, originKeys[j]!, s)) l2Fill.push({ key: originKeys[j]!, row: s });
        }
      }
      if (l1 && epoch === this.epoch) {
        let filled = 0;
        const cap = heardAtStart ? this.fillTtlCap() : this.feedDownTtlMs;
        for (let i = 0; i < n; i++) {
          const s = slots[i];
          if (s !== UNAVAILABLE && fillable(flight, keys[i]!, s) && l1.fill(keys[i]!, s, cap)) filled++;
        }
        this.m.l1Fills.inc(filled);
      }
      // Not across an invalidation either: the rows were read before it, and L2 would key them under the new
      // generation, where no newer row stands to refuse them (the compare-event-time rule holds within one).
      // A read that began before a push and a generation bump put the pushed-over row there: every pod then
      // served it PRESENT for the L2 TTL.
      if (l2 && l2Fill.length > 0 && epoch === this.epoch && this.sharedFills()) {
        this.track(l2.write(l2Fill).then((ok) => (ok ? this.m.l2Fills.inc(l2Fill.length) : this.m.l2WriteErrors.inc())));
      }
    } catch (error) {
      // A bug below must not leave joiners waiting: they get UNAVAILABLE (and grace copies).
      console.error("quiver: cache read failed", error);
    } finally {
      flight.slots = slots;
    }
  }

  /**
   * Writes to the origin, then: this pod's L1 takes the rows it already held
   * (read-your-writes without flooding L1 with rows nobody read), and L2
   * takes them through the compare-event-time script. When the origin
   * ignored some rows (it holds newer ones) we do not know which rows won:
   * L2 and L1 keep a floor at each written time instead (the origin holds a
   * row at least that new), which refuses older fills. Reads in flight for
   * these keys fill no cache (InFlight.supersede).
   */
  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    // As for a read (fly): made while the feed is not heard, a write elsewhere that overtook it on the origin
    // before the first subscription is never announced here, however heard the feed is when this one lands.
    const heardAtStart = this.feed.hearing;
    let out: PutOutcome;
    try {
      out = await this.origin.putMany(entries, signal);
    } catch (error) {
      const landed = storeMayHold(error, entries);
      if (landed.length > 0) await this.dropAfterFailedWrite(landed);
      throw error;
    }
    const l1 = this.l1;
    const l2 = this.l2;
    if (out.ignored === 0) {
      if (l1) {
        const cap = heardAtStart ? this.fillTtlCap() : this.feedDownTtlMs;
        for (const e of entries) {
          if (l1.has(e.key)) l1.fill(e.key, e.row, cap);
          // A read of the key in flight found the row this write replaced: the floor keeps its fill out of L1
          // (it put the old row back, and the writing pod answered it after the 200: read-your-writes broken).
          else if (this.inFlight.has(e.key)) l1.supersede(e.key, e.row.ts, true);
        }
      }
      for (const e of entries) this.inFlight.supersede(e.key, e.row.ts);
      if (l2) {
        const ok = await l2.writeThrough(entries);
        if (ok) this.m.l2Fills.inc(entries.length);
        else this.l2Missed(entries, "put");
      }
    } else {
      // Deleted, a read in flight refilled L1 with the row from before the write (a late or repeated row in
      // the push was enough), and the writing pod served it after its 200.
      // A floor for keys held or being read; one for every key of the push filled L1 with floors on every replay.
      if (l1) for (const e of entries) l1.supersede(e.key, e.row.ts, l1.has(e.key) || this.inFlight.has(e.key));
      for (const e of entries) this.inFlight.supersede(e.key, e.row.ts);
      if (l2 && !(await l2.supersede(entries))) this.l2Missed(entries, "put");
    }
    return out;
  }

  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    const n = await this.origin.deleteMany(keys, signal);
    const now = this.clock();
    if (this.l1) for (const k of keys) this.l1.supersede(k, now, true);
    for (const k of keys) this.inFlight.supersede(k, Number.POSITIVE_INFINITY);
    if (this.l2 && !(await this.l2.remove(keys))) this.l2Missed(keys.map((key) => ({ key, row: { ts: now, values: [] } })), "delete");
    return n;
  }

  /** The life an L1 fill may have now: capped while the change feed is not heard (it cannot hear of other pods' writes). */
  private fillTtlCap(): number | undefined {
    return this.feed.hearing ? undefined : this.feedDownTtlMs;
  }

  /**
   * A write that failed may have landed on some shards (a multi-shard push
   * answered 503): the caches' copies of its keys may now be older than the
   * origin, and were served PRESENT until their TTL (L2's: 300 s). They are
   * dropped here; other pods hear of the write on the feed all the same
   * (PublishingKvNode publishes failed writes too). L2 keeps a floor at each
   * written event time (as for a push with ignored rows), not nothing: when
   * nothing was published, another pod's read that began before the write
   * was not stopped from filling, and after a removal its row from before
   * the write landed in L2 for every pod for the L2 TTL. A copy at least as
   * new stays. Only the entries that may have landed come here
   * (storeMayHold): a share refused before anything was sent (its shard's
   * write breaker open) changed nothing, so this pod's copies of its keys stay
   * (fresh, or grace copies while the shard is down), in L1 and in L2.
   */
  private async dropAfterFailedWrite(entries: readonly KvEntry[]): Promise<void> {
    if (this.l1) for (const e of entries) this.l1.delete(e.key);
    // The write may have landed: nothing read before it may fill a cache.
    for (const e of entries) this.inFlight.supersede(e.key, Number.POSITIVE_INFINITY);
    if (this.l2 && !(await this.l2.supersede(entries))) this.l2Missed(entries, "put");
  }

  /** The origin took these but L2 did not: its copies may be older (l2-repair.ts); skipped, then removed once L2 answers. */
  private l2Missed(entries: readonly KvEntry[], op: ChangeEvent["op"]): void {
    this.m.l2WriteErrors.inc();
    for (const e of entries) this.repair.note(e.key, e.row.ts, op);
    this.scheduleRepair();
  }

  private scheduleRepair(): void {
    if (this.repairTimer !== undefined || this.closed || !this.repair.pending) return;
    this.repairTimer = this.schedule(() => {
      this.repairTimer = undefined;
      this.track(this.runRepair());
    }, this.repairDelayMs);
  }

  /**
   * One repair step: the whole tier invalidated (past the bound), or a batch
   * of keys removed from L2 and announced on the feed, so other pods drop L1
   * copies they read from L2 meanwhile. Retried, the wait doubling, while L2
   * cannot take it.
   */
  private async runRepair(): Promise<void> {
    const l2 = this.l2;
    if (!l2 || this.closed || this.repairing) return;
    this.repairing = true;
    try {
      await this.repairStep(l2);
    } finally {
      this.repairing = false;
    }
    this.scheduleRepair();
  }

  private async repairStep(l2: L2Tier): Promise<void> {
    let ok: boolean;
    if (this.repair.wholeTier) {
      ok = await this.invalidate({ all: true }).then(
        () => true,
        () => false,
      );
      if (ok) this.repair.doneAll();
    } else if (this.repair.waitingViews().length > 0) {
      ok = true;
      for (const view of this.repair.waitingViews()) {
        // The view was dropped from L1s when it changed; now that L2's copies are out of reach too, once more.
        if (!(await this.invalidate({ view }).then(() => true, () => false))) {
          ok = false;
          break;
        }
        this.repair.viewDone(view);
      }
    } else {
      const batch = this.repair.take(REPAIR_BATCH);
      ok = await l2.remove(batch.map((e) => e.key));
      if (ok) {
        this.repair.done(batch);
        this.m.l2Repaired.inc(batch.length);
        this.feed.publish(batch);
      }
    }
    this.repairDelayMs = ok ? REPAIR_FIRST_MS : Math.min(this.repairDelayMs * 2, REPAIR_MAX_MS);
  }

  /** Drops a view (or everything) on every pod and in L2: bumps L2's generation, then tells every pod. Throws when L2 cannot take it. */
  async invalidate(scope: InvalidationScope): Promise<void> {
    if (this.l2) await this.l2.bumpGeneration(scope);
    this.m.invalidationsSent.inc();
    this.feed.invalidate(scope);
  }

  /**
   * For a change already made (a registry reload): the scope is dropped here
   * and on every pod at once, and L2's generation bumped as soon as L2 takes
   * it; until then this pod reads the scope's keys from the origin. Never
   * throws: the change is not undone because L2 is away.
   */
  invalidateAfterChange(scope: InvalidationScope): void {
    if (this.l2) {
      if ("all" in scope) this.repair.noteAll();
      else this.repair.noteView(scope.view);
    }
    this.m.invalidationsSent.inc();
    this.feed.invalidate(scope);
    if (this.l2) this.track(this.runRepair());
  }

  onChanges(events: readonly ChangeEvent[], origin: string): void {
    // This pod's own writes were applied in putMany/deleteMany already.
    if (origin === this.feed.origin) return;
    const l1 = this.l1;
    let dropped = 0;
    for (const e of events) {
      if (l1?.supersede(e.key, e.ts, this.inFlight.has(e.key))) dropped++;
      this.inFlight.supersede(e.key, e.ts);
    }
    if (dropped > 0) this.m.keysSuperseded.inc(dropped);
  }

  onInvalidate(scope: InvalidationScope, origin: string): void {
    this.drop(scope);
    this.m.invalidationsApplied.inc();
    if (origin !== this.feed.origin && this.l2) this.track(this.l2.syncGenerations());
  }

  /** Drops a view (or everything) from L1; reads begun before fill nothing. Also when L2's check raised its generation. */
  private drop(scope: InvalidationScope): void {
    this.epoch++;
    if (this.l1) {
      if ("all" in scope) this.l1.clear();
      else this.l1.dropView(scope.view);
    }
  }

  /**
   * A gap (the feed lost, messages missed): every L1 row is read again before
   * it is served fresh, and reads begun before fill nothing. Rows stay as
   * grace copies: cleared, a shard down with the feed (the feed on a shard,
   * or one outage taking both) left its keys nothing but defaults.
   */
  onGap(): void {
    this.epoch++;
    this.l1?.expireAll();
    this.m.gapsCleared.inc();
    if (this.l2) this.track(this.l2.syncGenerations());
  }

  state(): CacheState {
    const l1 = this.l1;
    return {
      l1: l1 ? { entries: l1.size, bytes: l1.bytes, maxBytes: l1.maxBytes } : "off",
      l2: this.l2 ? this.l2.state() : "off",
      inFlight: this.inFlight.size + this.refreshDue.length,
      l2RepairPending: this.repair.wholeTier ? "all" : this.repair.size,
    };
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.origin.scan(cursor, count, prefix);
  }

  /** The origin's health under this tier's id; the tiers' own state is in `state()` (a lost L2 degrades, it does not fail). */
  async health(): Promise<NodeHealth> {
    const origin = await this.origin.health();
    return { id: this.id, ok: origin.ok, detail: { origin, cache: this.state() } };
  }

  /** Waits for background fills, then closes L2 and the origin. */
  async close(): Promise<void> {
    this.unsubscribe();
    this.closed = true;
    // Refreshes not yet started are dropped: their entries expire as they would have.
    this.refreshFlush?.();
    this.refreshFlush = undefined;
    this.repairTimer?.();
    this.repairTimer = undefined;
    this.refreshDue = [];
    await Promise.allSettled([...this.tasks]);
    await this.l2?.close();
    await this.origin.close();
  }

  /** Resolves once the background work started so far (L2 fills, generation re-reads) has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.tasks]);
  }

  /** Background work (L2 fills, generation re-reads) that close() drains. */
  private track(task: Promise<unknown>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }
}

/** `list` with `key` added (a new list when there was none): the keys a read found due for a refresh. */
function appended(list: string[] | undefined, key: string): string[] {
  if (list === undefined) return [key];
  list.push(key);
  return list;
}

function staleCopy(row: StoredRow): StoredRow {
  return { ts: row.ts, values: row.values, stale: true };
}

/** Hands a packed row (L1's layout) to `sink` as batch index `i`, copied into `scratch` to be read there. */
function reportPacked(scratch: RowScratch, sink: RawRowSink, i: number, packed: Uint8Array, ts: number): void {
  const at = scratch.put(packed);
  sink.row(i, scratch.bytes, scratch.view, at + ROW_HEADER_BYTES, at + packed.length, ts);
}

/** CacheTier.readMisses, as HeldRows calls it. */
type ReadMisses = (keys: readonly string[], missPos: readonly number[], out: ReadSlot[], ctx: ReadContext | undefined) => Promise<void>;

const NO_KEYS: string[] = [];
const NO_POSITIONS: number[] = [];
const NO_SLOTS: ReadSlot[] = [];

/**
 * A read-through raw read's rows (ThroughRows): L1's fresh entries from the
 * pass (packed bytes; a negative entry is a key with no row) and, once
 * `readRest` has run, the slots read for the keys at `missAt`.
 */
class HeldRows implements ThroughRows {
  private held: readonly (L1Entry | undefined)[] = [];
  count = 0;
  found = 0;
  unavailable = 0;
  stale = 0;
  private missKeys: readonly string[] = NO_KEYS;
  private missAt: readonly number[] = NO_POSITIONS;
  private fetched: ReadSlot[] = NO_SLOTS;

  constructor(
    readonly scratch: RowScratch,
    private readonly readMisses: ReadMisses,
  ) {}

  /** Takes a pass's entries (the first `count` of `held`) and the keys it missed. */
  hold(held: readonly (L1Entry | undefined)[], count: number, found: number, missKeys: readonly string[] = NO_KEYS, missAt: readonly number[] = NO_POSITIONS): this {
    this.held = held;
    this.count = count;
    this.found = found;
    this.unavailable = 0;
    this.stale = 0;
    this.missKeys = missKeys;
    this.missAt = missAt;
    this.fetched = NO_SLOTS;
    return this;
  }

  get missing(): number {
    return this.missKeys.length;
  }

  async readRest(ctx: ReadContext): Promise<void> {
    const m = this.missKeys.length;
    const fetched = new Array<ReadSlot>(m);
    const positions = new Array<number>(m);
    for (let j = 0; j < m; j++) positions[j] = j;
    await this.readMisses(this.missKeys, positions, fetched, ctx);
    for (let j = 0; j < m; j++) {
      const s = fetched[j];
      if (s === UNAVAILABLE) this.unavailable++;
      else if (s !== undefined) {
        this.found++;
        if (s.stale === true) this.stale++;
      }
    }
    this.fetched = fetched;
  }

  report(sink: RawRowSink): number {
    this.mustBeRead();
    // A row the origin could not give (a default or a stale copy stands in) is the decoding path's to write, with its headers.
    if (this.unavailable > 0 || this.stale > 0) return -1;
    const scratch = this.scratch;
    scratch.reset();
    const held = this.held;
    let found = 0;
    for (let i = 0; i < this.count; i++) {
      const e = held[i];
      if (e?.raw === undefined) continue;
      reportPacked(scratch, sink, i, e.raw, e.ts);
      found++;
    }
    const fetched = this.fetched;
    for (let j = 0; j < fetched.length; j++) {
      const row = fetched[j] as StoredRow | undefined;
      if (row === undefined) continue;
      reportPacked(scratch, sink, this.missAt[j]!, encodeRow(row), row.ts);
      found++;
    }
    return found;
  }

  slots(): ReadSlot[] {
    this.mustBeRead();
    const held = this.held;
    const out = new Array<ReadSlot>(this.count);
    for (let i = 0; i < this.count; i++) {
      const e = held[i];
      out[i] = e === undefined ? undefined : L1Cache.rowOf(e);
    }
    for (let j = 0; j < this.fetched.length; j++) out[this.missAt[j]!] = this.fetched[j];
    return out;
  }

  private mustBeRead(): void {
    if (this.fetched.length !== this.missKeys.length) throw new Error("ThroughRows: readRest must run before the rows are reported");
  }
}

/** A flight that ended this close to its deadline (ms) or later is taken to have been cut short by it. */
const DEADLINE_SLACK_MS = 1;

/** Resolves when `work` does or at `deadline` (performance.now() ms), whichever is first. */
function untilDeadline(work: Promise<unknown>, deadline: number): Promise<unknown> {
  const ms = deadline - performance.now();
  if (ms <= 0) return Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
