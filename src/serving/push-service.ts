import { invalid, unknownName } from "../errors/index.ts";
import type { FeatureValue, KvEntry, KvNode, PutOutcome } from "../kv/kv-node.ts";
import { type CompiledPushSource, type CompiledView, DEFAULT_TIMESTAMP_FIELD, PUSH_TIME_COLUMNS } from "../registry/index.ts";
import { type EntityInput, entityKeys } from "./entity-input.ts";
import { parseEventTime } from "./event-time.ts";
import { WriteStamps } from "./write-stamps.ts";


/** One view's validated rows, and which of them still need an event time. */
interface ValidRows {
  readonly entries: KvEntry[];
  readonly unstamped: readonly number[];
}

/** Feast's created-timestamp columns are accepted and not stored (event time orders writes), but must be times. */
function checkCreated(input: EntityInput, created: readonly string[]): void {
  const rows = input.rowCount;
  for (const name of created) {
    for (let r = 0; r < rows; r++) {
      const v = input.value(r, name);
      if (v !== undefined && v !== null) parseEventTime(v, input.pathOf(r, name));
    }
  }
}

export interface PushOptions {
  /** How far in the future an event may be; a far-future row would block every later write. */
  readonly maxFutureSkewMs: number;
}

/**
 * The write path: turns pushed rows into stored rows, checking every value
 * against its feature's type before anything is written, then writes them as
 * one last-write-wins batch.
 */
export class PushService {
  /** Event times for rows pushed without one: see write-stamps.ts. */
  private readonly stamps = new WriteStamps();

  constructor(
    private readonly store: KvNode,
    private readonly options: PushOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Validates every row; throws an error naming the first bad field. `columns`
   * lists every field present with where it sits (each row's keys in row
   * form), so an unknown name is caught even when only one row has it.
   */
  prepare(view: CompiledView, input: EntityInput, columns: Iterable<{ readonly name: string; readonly path: string }>): KvEntry[] {
    // Feast's created timestamps are accepted and not stored (event time orders writes), but must be times.
    const created: string[] = [];
    for (const { name, path } of columns) {
      if (!view.featureIndex.has(name) && !PUSH_TIME_COLUMNS.has(name) && !view.joinKeys.some((k) => k.name === name)) {
        const known = view.features.map((f) => f.name).join(", ");
        throw unknownName("unknown_feature", path, `feature view "${view.name}" has no feature or join key "${name}" (features: ${known})`);
      }
      if (name !== DEFAULT_TIMESTAMP_FIELD && PUSH_TIME_COLUMNS.has(name) && !view.featureIndex.has(name)) created.push(name);
    }
    checkCreated(input, created);
    const now = this.clock();
    const rows = this.validRows(view, input, DEFAULT_TIMESTAMP_FIELD, now);
    this.stampAll(rows, now);
    return rows.entries;
  }

  /**
   * A push to a declared push source (Feast's PushSource): every view it lists
   * takes its join keys and its features, with the event time from the
   * source's `timestampField`. A column no view reads (and not a time column)
   * is refused, as is a frame lacking any feature of a view it writes (`data`
   * is the frame's path, for that error). Every view's rows are validated
   * before any is stamped or returned: all or nothing.
   */
  prepareSource(source: CompiledPushSource, input: EntityInput, columns: Iterable<{ readonly name: string; readonly path: string }>, data: string): KvEntry[] {
    const time = source.timestampField;
    const present = new Set<string>();
    const created: string[] = [];
    for (const { name, path } of columns) {
      present.add(name);
      if (name === time) continue;
      if (name !== DEFAULT_TIMESTAMP_FIELD && PUSH_TIME_COLUMNS.has(name)) {
        created.push(name);
        continue;
      }
      if (source.views.some((v) => v.featureIndex.has(name) || v.joinKeys.some((k) => k.name === name))) continue;
      const views = source.views.map((v) => `"${v.name}"`).join(", ");
      if (name === DEFAULT_TIMESTAMP_FIELD) {
        throw unknownName("unknown_feature", path, `push source "${source.name}" reads its event time from "${time}" (its timestampField), and none of its views (${views}) has a feature or join key "${name}"`);
      }
      throw unknownName("unknown_feature", path, `no feature view of push source "${source.name}" (${views}) has a feature or join key "${name}"`);
    }
    // Every feature of every view: a push replaces each view's whole row, so a frame carrying a few columns for one
    // view nulled the rest of it (one payments event wiped a customer's profile). Feast refuses such a frame too.
    for (const view of source.views) {
      const missing = view.features.filter((f) => !present.has(f.name)).map((f) => f.name);
      if (missing.length === 0) continue;
      throw invalid(
        "missing_features",
        data,
        `lacks ${missing.length === view.features.length ? "every feature" : "features"} of view "${view.name}": ${missing.join(", ")} (push source "${source.name}" writes each view it lists whole; send a column for each of its features, null where there is no value)`,
      );
    }
    checkCreated(input, created);
    const now = this.clock();
    const prepared = source.views.map((view) => this.validRows(view, input, time, now));
    for (const rows of prepared) this.stampAll(rows, now);
    return prepared.length === 1 ? prepared[0]!.entries : prepared.flatMap((rows) => rows.entries);
  }

  /** Every row of `view` checked and turned into its stored form; rows without an event time are stamped later (stampAll). */
  private validRows(view: CompiledView, input: EntityInput, timeColumn: string, now: number): ValidRows {
    const rows = input.rowCount;
    const keys = entityKeys(input, view.joinKeys);
    const latest = now + this.options.maxFutureSkewMs;
    const entries = new Array<KvEntry>(rows);
    const features = view.features;
    // Rows without an event time, stamped once every row has been validated.
    const unstamped: number[] = [];
    for (let r = 0; r < rows; r++) {
      const rawTs = input.value(r, timeColumn);
      let ts = now;
      if (rawTs === undefined || rawTs === null) {
        unstamped.push(r);
      } else {
        ts = parseEventTime(rawTs, input.pathOf(r, timeColumn));
        if (ts > latest) {
          throw invalid("invalid_value", input.pathOf(r, timeColumn), `is ${Math.round((ts - now) / 1000)} s in the future; the limit is ${this.options.maxFutureSkewMs / 1000} s`);
        }
      }
      const values = new Array<FeatureValue>(features.length);
      for (let f = 0; f < features.length; f++) {
        const feature = features[f]!;
        const v = input.value(r, feature.name);
        if (v === undefined || v === null) {
          values[f] = null;
          continue;
        }
        const problem = feature.check(v);
        if (problem) throw invalid("invalid_value", input.pathOf(r, feature.name), problem);
        values[f] = feature.canonical(v);
      }
      entries[r] = { key: view.keyPrefix + keys[r]!, row: { ts, values } };
    }
    return { entries, unstamped };
  }

  private stampAll({ entries, unstamped }: ValidRows, now: number): void {
    if (unstamped.length === 0) {
      for (const entry of entries) if (entry.row.ts >= now) this.stamps.observe(entry.key, entry.row.ts, now);
    } else {
      this.stampRows(entries, unstamped, now);
    }
  }

  /**
   * Gives rows pushed without an event time a stamp after the key's last
   * (write-stamps.ts), so a push takes effect over one a moment before it.
   * Within one push the last row of a key wins: earlier rows of that key are
   * stamped just before it.
   */
  private stampRows(entries: KvEntry[], unstamped: readonly number[], now: number): void {
    const stamped = unstamped.length === entries.length ? undefined : new Set(unstamped);
    for (let r = 0; r < entries.length; r++) {
      const entry = entries[r]!;
      if (stamped !== undefined && !stamped.has(r) && entry.row.ts >= now) this.stamps.observe(entry.key, entry.row.ts, now);
    }
    const later = unstamped.length > 1 ? new Map<string, number>() : undefined;
    for (let i = unstamped.length - 1; i >= 0; i--) {
      const entry = entries[unstamped[i]!]!;
      const next = later?.get(entry.key);
      const ts = next === undefined ? this.stamps.stamp(entry.key, now) : next - 1;
      later?.set(entry.key, ts);
      entries[unstamped[i]!] = { key: entry.key, row: { ts, values: entry.row.values } };
    }
  }

  write(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    return this.store.putMany(entries, signal);
  }
}
