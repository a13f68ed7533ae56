import type { RawRowSink } from "../kv/kv-node.ts";
import type { FeatureRef } from "../registry/index.ts";
import { Status } from "./statuses.ts";

/**
 * A single-view lookup's rows as the store holds them: per entity row, where
 * its MessagePack values sit (or nothing: not found), its event time and its
 * status (PRESENT, OUTSIDE_MAX_AGE or NOT_FOUND; a value stored as nil is
 * NULL_VALUE, which the writer sees in the bytes). Filled by `KvNode.rawNow`
 * and handed to an answer writer within the same synchronous call: the byte
 * references point into the store's memory and are dropped right after.
 * One instance per LookupService, reused (lookups are synchronous here).
 */
export class RawRows implements RawRowSink {
  rowCount = 0;
  refs: readonly FeatureRef[] = [];
  /** Missing, null values carry the feature's default (status unchanged). */
  fillDefaults = true;
  /** Per row: the stored bytes, or undefined when the entity has no row. */
  readonly bytes: (Uint8Array | undefined)[] = [];
  readonly views: (DataView | undefined)[] = [];
  start = new Int32Array(16);
  end = new Int32Array(16);
  /** Event time in ms; 0 for rows not found. */
  ts = new Float64Array(16);
  /** Status of the row's stored values (see above). */
  status = new Uint8Array(16);

  /** Starts a lookup of `rows` entity rows. */
  begin(rows: number, refs: readonly FeatureRef[], fillDefaults: boolean): void {
    if (rows > this.ts.length) {
      let size = this.ts.length;
      while (size < rows) size *= 2;
      this.start = new Int32Array(size);
      this.end = new Int32Array(size);
      this.ts = new Float64Array(size);
      this.status = new Uint8Array(size);
    }
    for (let r = 0; r < rows; r++) {
      this.bytes[r] = undefined;
      this.ts[r] = 0;
      this.status[r] = Status.NOT_FOUND;
    }
    this.rowCount = rows;
    this.refs = refs;
    this.fillDefaults = fillDefaults;
  }

  row(index: number, bytes: Uint8Array, view: DataView, start: number, end: number, ts: number): void {
    this.bytes[index] = bytes;
    this.views[index] = view;
    this.start[index] = start;
    this.end[index] = end;
    this.ts[index] = ts;
    this.status[index] = Status.PRESENT;
  }

  /** Marks rows older than the view's max age (ms; 0 = no limit) at `now`. */
  ageRows(maxAgeMs: number, now: number): void {
    if (maxAgeMs <= 0) return;
    for (let r = 0; r < this.rowCount; r++) if (this.status[r] === Status.PRESENT && now - this.ts[r]! > maxAgeMs) this.status[r] = Status.OUTSIDE_MAX_AGE;
  }

  /** Drops the references into the store's memory. */
  release(): void {
    for (let r = 0; r < this.rowCount; r++) {
      this.bytes[r] = undefined;
      this.views[r] = undefined;
    }
    this.rowCount = 0;
  }
}
