import type { FeatureValue, KvNode, ReadContext, ReadSlot, ThroughRows } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import type { CompiledView, FeatureRef } from "../registry/index.ts";
import { KeyBatch } from "../kv/key-batch.ts";
import { type EntityInput, entityKeyBytes, entityKeys } from "./entity-input.ts";
import { RawRows } from "./raw-rows.ts";
import { Status } from "./statuses.ts";

/** A validated lookup: what to read, for which entities, and how to answer misses. */
export interface LookupQuery {
  readonly refs: readonly FeatureRef[];
  readonly entities: EntityInput;
  /** Missing, null and unavailable values carry the feature's default (status unchanged). */
  readonly fillDefaults: boolean;
}

/**
 * Results in flat row-major arrays (row r, feature c at r * refs.length + c):
 * one allocation per array whatever the batch size, and each API edge lays it
 * out in its own shape (rows for /v1, columns for Feast).
 */
export interface LookupResult {
  readonly refs: readonly FeatureRef[];
  readonly rowCount: number;
  readonly values: FeatureValue[];
  readonly statuses: Uint8Array;
  /** Event time in ms; 0 where there is no stored value. */
  readonly timestamps: Float64Array;
  /** Ids of storage nodes (shards) that could not answer some of the keys; empty when all answered. */
  readonly degraded: readonly string[];
  /**
   * Per value, 1 where a cache served the row from its grace window because
   * the origin could not answer; `undefined` (no allocation) when none was.
   */
  readonly stale: Uint8Array | undefined;
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * Do features `a` and `b` of `result` carry the same event time in every row?
 * Features of one view do (a row's time, 0 where it was not found): column
 * writers then copy one feature's written times instead of formatting them
 * again.
 */
export function sameEventTimes(result: LookupResult, a: number, b: number): boolean {
  const times = result.timestamps;
  const nf = result.refs.length;
  for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) if (times[base + a] !== times[base + b]) return false;
  return true;
}

/** Per-request view plan: the distinct views asked for and where each ref reads from. Shared (read-only) for single-view requests. */
interface Plan {
  readonly views: readonly CompiledView[];
  /** For ref c: index into `views`. */
  readonly viewOf: Int32Array;
}

/**
 * Answers lookups with one storage call per request (the store batches per
 * node). Reads go through `store`, which may be the ring, a cache tier in
 * front of it, or a resilience wrapper: the service only knows KvNode.
 */
export class LookupService {
  /** Plans of single-view requests (the common case), made once per compiled view. */
  private readonly singleViewPlans = new WeakMap<CompiledView, Plan>();

  constructor(
    private readonly store: KvNode,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Answers synchronously when the store can answer every key from process
   * memory (`getManyNow`: no promise per layer on the hot path), else returns a promise. Callers `await` either.
   * The HTTP edge passes no client-disconnect signal: every remote read is
   * already bounded by the shard's attempt and request deadlines, and wiring
   * the request's AbortSignal into each read cost ~7% of Redis-backed
   * throughput (Bun allocates the signal, each read adds and removes a listener).
   */
  lookup(q: LookupQuery, options?: ReadOptions): LookupResult | Promise<LookupResult> {
    return this.lookupAfter(q, options, this.takeDeclined(q));
  }

  /**
   * `lookup`, after the raw read of this very query (`declined`) found keys not in memory: a read-through
   * pass it made is finished here (only the keys it lacked are read), and without one the synchronous
   * probe would find the same misses, so it is skipped.
   */
  private lookupAfter(q: LookupQuery, options: ReadOptions | undefined, declined: Declined | undefined): LookupResult | Promise<LookupResult> {
    const plan = this.planOf(q.refs);
    const held = declined?.held;
    if (held !== undefined) {
      const ctx = readContext(options);
      return held.readRest(ctx).then(() => fill(q, plan, q.entities.rowCount, held.slots(), this.clock(), ctx.degraded!));
    }
    const keys = buildKeys(plan, q.entities);
    if (keys.length === 0) return fill(q, plan, q.entities.rowCount, [], this.clock(), NONE);
    const now = declined !== undefined ? undefined : this.store.getManyNow(keys);
    if (now !== undefined) return fill(q, plan, q.entities.rowCount, now, this.clock(), NONE);
    const ctx = readContext(options);
    return this.store.getMany(keys, ctx).then((slots) => fill(q, plan, q.entities.rowCount, slots, this.clock(), ctx.degraded!));
  }

  /** What `lookupRaw` left for this query (Declined), taken: any other call finds nothing. */
  private takeDeclined(q: LookupQuery): Declined | undefined {
    const d = this.declined;
    this.declined = undefined;
    return d !== undefined && d.q === q ? d : undefined;
  }

  /**
   * A single-view lookup answered from the stored bytes: when the store hands
   * rows over raw (`KvNode.rawNow`, the embedded store), `write` turns them
   * into the answer directly, without value objects or a LookupResult. Answers
   * undefined when this path does not apply (several views, a store without
   * raw reads, a cache tier missing some keys in L1, a string key outside
   * ASCII, or `write` declining a row's bytes): the caller then calls
   * `lookupRest` (or `lookup`), which reads what L1 lacked. `arg` is handed
   * to `write` as it is (no closure per request).
   * Same statuses and defaults as `lookup` (tests compare the two).
   */
  lookupRaw<T, A>(q: LookupQuery, write: (rows: RawRows, arg: A) => T | undefined, arg: A): T | undefined {
    this.declined = undefined;
    const raw = this.store.rawNow;
    if (raw === undefined) return undefined;
    const plan = this.planOf(q.refs);
    if (plan.views.length !== 1) return undefined;
    const view = plan.views[0]!;
    const keys = this.keyBatch;
    // Keys as bytes, no string per row; a string key outside ASCII takes the decoding path.
    if (!entityKeyBytes(q.entities, view.joinKeys, view.keyPrefixBytes, keys)) return undefined;
    const through = raw.readThrough;
    // A cache tier, several keys: one pass over L1. Keys it lacks are read by `lookupRest` (or `lookup`), which finish
    // this pass. One key: `readRaw` answers a hit with less work (measured: the pass's setup and report cost ~150 ns
    // more per single-key read); a miss then makes the pass, one probe more on a lookup bound for the origin anyway.
    if (through !== undefined && keys.count > 1) return this.passOver(q, view, through(keys), write, arg);
    const rows = this.rawRows;
    rows.begin(keys.count, q.refs, q.fillDefaults);
    try {
      if (raw.readRaw(keys, keys.all, 0, keys.count, rows) >= 0) {
        rows.ageRows(view.maxAgeMs, this.clock());
        return write(rows, arg);
      }
    } finally {
      rows.release();
    }
    // -1: a node holds some keys only elsewhere; `lookupRest` or `lookup` reads them, without probing memory again.
    if (through !== undefined) return this.passOver(q, view, through(keys), write, arg);
    this.declined = { q, held: undefined };
    return undefined;
  }

  /** A read-through pass: written now when it found every key, else kept for `lookupRest` / `lookup` to finish. */
  private passOver<T, A>(q: LookupQuery, view: CompiledView, held: ThroughRows, write: (rows: RawRows, arg: A) => T | undefined, arg: A): T | undefined {
    if (held.missing === 0) return this.writeHeld(q, view, held, write, arg);
    this.declined = { q, held };
    return undefined;
  }

  /** `write` over a read-through read's rows, or undefined when they cannot all be given as bytes or `write` declines. */
  private writeHeld<T, A>(q: LookupQuery, view: CompiledView, held: ThroughRows, write: (rows: RawRows, arg: A) => T | undefined, arg: A): T | undefined {
    const rows = this.rawRows;
    rows.begin(held.count, q.refs, q.fillDefaults);
    try {
      if (held.report(rows) < 0) return undefined;
      rows.ageRows(view.maxAgeMs, this.clock());
      return write(rows, arg);
    } finally {
      rows.release();
    }
  }

  /**
   * The rest of a lookup whose `lookupRaw` answered undefined, answered as
   * `write` (from stored bytes, as lookupRaw's) or `encode` (of the
   * LookupResult `lookup` answers) makes it. When that raw read found keys
   * not in memory and the store can read them through as bytes
   * (`RawReader.readThrough`: a cache tier), only those are read and `write`
   * answers from the bytes; if a row cannot be given as bytes (its shard
   * could not answer) or `write` declines, `encode` answers from the same
   * read, decoded. Otherwise this is `lookup`, then `encode`. `late` tells
   * `encode` whether storage was waited for. `arg` is passed on as it is.
   */
  lookupRest<T, A>(q: LookupQuery, options: ReadOptions | undefined, write: (rows: RawRows, arg: A) => T | undefined, encode: (result: LookupResult, arg: A, late: boolean) => T, arg: A): T | Promise<T> {
    const declined = this.takeDeclined(q);
    const held = declined?.held;
    if (held === undefined) {
      const result = this.lookupAfter(q, options, declined);
      return result instanceof Promise ? result.then((r) => encode(r, arg, true)) : encode(result, arg, false);
    }
    const plan = this.planOf(q.refs);
    const ctx = readContext(options);
    return held.readRest(ctx).then(() => {
      const out = this.writeHeld(q, plan.views[0]!, held, write, arg);
      return out !== undefined ? out : encode(fill(q, plan, held.count, held.slots(), this.clock(), ctx.degraded!), arg, true);
    });
  }

  /**
   * The query whose raw read could not answer now (some key is not in
   * memory; by RawReader's contract `getManyNow` would answer undefined too),
   * with the read-through pass it made when the store offers one. The
   * `lookupRest` or `lookup` the caller makes of it next finishes that pass
   * (reading only the keys it lacked), or goes straight to `getMany` without
   * probing memory again. Any other call clears it.
   */
  private declined: Declined | undefined;
  private readonly rawRows = new RawRows();
  private readonly keyBatch = new KeyBatch();

  /** Which views a request reads and where each ref reads from; a single view's plan is made once. */
  private planOf(refs: readonly FeatureRef[]): Plan {
    const first = refs[0]?.view;
    let single = first !== undefined;
    for (let c = 1; single && c < refs.length; c++) single = refs[c]!.view === first;
    if (single) {
      const cached = this.singleViewPlans.get(first!);
      if (cached !== undefined && cached.viewOf.length >= refs.length) return cached;
      // viewOf is all zeros (every ref reads view 0); sized for the longest request seen.
      const plan: Plan = { views: [first!], viewOf: new Int32Array(Math.max(refs.length, first!.features.length)) };
      this.singleViewPlans.set(first!, plan);
      return plan;
    }
    const views: CompiledView[] = [];
    const viewOf = new Int32Array(refs.length);
    for (let c = 0; c < refs.length; c++) {
      const v = refs[c]!.view;
      let i = views.indexOf(v);
      if (i < 0) i = views.push(v) - 1;
      viewOf[c] = i;
    }
    return { views, viewOf };
  }
}

/** Storage keys, view-major: key of view v, row r at v * rows + r. Entity keys are built once per join-key set. */
function buildKeys(plan: Plan, entities: EntityInput): string[] {
  // One view: the keys are the view's prefix + each entity key, built as one string each.
  if (plan.views.length === 1) return entityKeys(entities, plan.views[0]!.joinKeys, plan.views[0]!.keyPrefix);
  const rows = entities.rowCount;
  const keys = new Array<string>(plan.views.length * rows);
  const bySignature = new Map<string, string[]>();
  for (let v = 0; v < plan.views.length; v++) {
    const view = plan.views[v]!;
    let ek = bySignature.get(view.joinKeySignature);
    if (!ek) {
      ek = entityKeys(entities, view.joinKeys);
      bySignature.set(view.joinKeySignature, ek);
    }
    const prefix = view.keyPrefix;
    for (let r = 0; r < rows; r++) keys[v * rows + r] = prefix + ek[r]!;
  }
  return keys;
}

function fill(q: LookupQuery, plan: Plan, rows: number, slots: readonly ReadSlot[], now: number, degraded: readonly string[]): LookupResult {
  const refs = q.refs;
  const nf = refs.length;
  const values = new Array<FeatureValue>(rows * nf);
  const statuses = new Uint8Array(rows * nf);
  const timestamps = new Float64Array(rows * nf);
  const fillDefaults = q.fillDefaults;
  let stale: Uint8Array | undefined;
  for (let c = 0; c < nf; c++) {
    const ref = refs[c]!;
    const view = ref.view;
    const fi = ref.feature.index;
    const dflt = fillDefaults ? ref.feature.defaultValue : null;
    const base = plan.viewOf[c]! * rows;
    const maxAge = view.maxAgeMs;
    for (let r = 0, at = c; r < rows; r++, at += nf) {
      const slot = slots[base + r];
      if (slot === undefined) {
        values[at] = dflt;
        statuses[at] = Status.NOT_FOUND;
      } else if (slot === UNAVAILABLE) {
        values[at] = dflt;
        statuses[at] = Status.UNAVAILABLE;
      } else {
        const v = slot.values[fi];
        timestamps[at] = slot.ts;
        if (slot.stale === true) {
          stale ??= new Uint8Array(rows * nf);
          stale[at] = 1;
        }
        if (v === null || v === undefined) {
          values[at] = dflt;
          statuses[at] = Status.NULL_VALUE;
        } else {
          // A stale value is still the best we have: return it, flagged.
          values[at] = v;
          statuses[at] = maxAge > 0 && now - slot.ts > maxAge ? Status.OUTSIDE_MAX_AGE : Status.PRESENT;
        }
      }
    }
  }
  return { refs, rowCount: rows, values, statuses, timestamps, degraded: degraded.length > 0 ? [...new Set(degraded)] : NONE, stale };
}

/** Bounds a lookup's storage reads take from its caller. */
type ReadOptions = { readonly signal?: AbortSignal; readonly deadline?: number };

/** A query whose raw read could not answer now, with the read-through pass it made (LookupService.declined). */
interface Declined {
  readonly q: LookupQuery;
  readonly held: ThroughRows | undefined;
}

/** A storage read's context for a lookup: its bounds, and where shards that could not answer are listed. */
function readContext(options: ReadOptions | undefined): ReadContext {
  return { degraded: [], signal: options?.signal, deadline: options?.deadline };
}
