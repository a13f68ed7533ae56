import { indexRowValues } from "../kv/row-index.ts";
import type { RawRows } from "./raw-rows.ts";
import { Status } from "./statuses.ts";

/** MessagePack nil: a value stored as null. */
const NIL = 0xc0;
/** Widest stored row indexed; a wider row declines (the caller decodes). */
const MAX_ROW_VALUES = 4096;

/**
 * Where each requested feature's stored value sits in a raw lookup's rows,
 * for answer writers that go column by column (Feast's vectors, quiver.v1's
 * columns): every row is indexed once (indexRowValues), then value (r, c) —
 * row r, requested feature c — is `offset(r, c)` into `rows.bytes[r]`, or -1
 * where the decoding path would find no value: no row, a stored nil, or a
 * row shorter than the feature's index (written before the view grew). One
 * grid per encoder, reused (encoding is synchronous).
 */
export class StoredValueGrid {
  /** At r * nf + c: the offset of row r's value for feature c, or -1. */
  private at = new Int32Array(1024);
  private nf = 0;
  /** One stored row's value offsets. */
  private readonly rowOffsets = new Int32Array(MAX_ROW_VALUES + 1);

  /** Indexes every row of `rows`; false when one holds bytes outside the checked shapes (the caller decodes). */
  locate(rows: RawRows): boolean {
    const n = rows.rowCount;
    const refs = rows.refs;
    const nf = refs.length;
    if (this.at.length < n * nf) this.at = new Int32Array(Math.max(n * nf, this.at.length * 2));
    this.nf = nf;
    const at = this.at;
    const offsets = this.rowOffsets;
    for (let r = 0, base = 0; r < n; r++, base += nf) {
      const bytes = rows.bytes[r];
      if (bytes === undefined) {
        at.fill(-1, base, base + nf);
        continue;
      }
      const count = indexRowValues(bytes, rows.views[r]!, rows.start[r]!, rows.end[r]!, offsets);
      if (count < 0) return false;
      for (let c = 0; c < nf; c++) {
        const fi = refs[c]!.feature.index;
        at[base + c] = fi < count && bytes[offsets[fi]!] !== NIL ? offsets[fi]! : -1;
      }
    }
    return true;
  }

  /** Row r's stored value for requested feature c: its offset, or -1 (see the class). */
  offset(r: number, c: number): number {
    return this.at[r * this.nf + c]!;
  }

  /** The status `fill` gives value (r, c): the row's own (PRESENT or OUTSIDE_MAX_AGE) where a value is stored, else NOT_FOUND or NULL_VALUE. */
  status(rows: RawRows, r: number, c: number): number {
    return this.at[r * this.nf + c]! >= 0 ? rows.status[r]! : rows.bytes[r] === undefined ? Status.NOT_FOUND : Status.NULL_VALUE;
  }
}
