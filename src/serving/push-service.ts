import { invalid, unknownName } from "../errors/index.ts";
import type { FeatureValue, KvEntry, KvNode, PutOutcome } from "../kv/kv-node.ts";
import { type CompiledView, PUSH_TIME_COLUMNS } from "../registry/index.ts";
import { type EntityInput, entityKeys } from "./entity-input.ts";
import { parseEventTime } from "./event-time.ts";
import { WriteStamps } from "./write-stamps.ts";


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
      if (name !== "event_timestamp" && PUSH_TIME_COLUMNS.has(name) && !view.featureIndex.has(name)) created.push(name);
    }
    const rows = input.rowCount;
    for (const name of created) {
      for (let r = 0; r < rows; r++) {
        const v = input.value(r, name);
        if (v !== undefined && v !== null) parseEventTime(v, input.pathOf(r, name));
      }
    }
    const keys = entityKeys(input, view.joinKeys);
    const now = this.clock();
    const latest = now + this.options.maxFutureSkewMs;
    const entries = new Array<KvEntry>(rows);
    const features = view.features;
    // Rows without an event time, stamped once every row has been validated.
    const unstamped: number[] = [];
    for (let r = 0; r < rows; r++) {
      const rawTs = input.value(r, "event_timestamp");
      let ts = now;
      if (rawTs === undefined || rawTs === null) {
        unstamped.push(r);
      } else {
        ts = parseEventTime(rawTs, input.pathOf(r, "event_timestamp"));
        if (ts > latest) {
          throw invalid("invalid_value", input.pathOf(r, "event_timestamp"), `is ${Math.round((ts - now) / 1000)} s in the future; the limit is ${this.options.maxFutureSkewMs / 1000} s`);
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
    if (unstamped.length === 0) {
      for (const entry of entries) if (entry.row.ts >= now) this.stamps.observe(entry.key, entry.row.ts, now);
    } else {
      this.stampRows(entries, unstamped, now);
    }
    return entries;
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
