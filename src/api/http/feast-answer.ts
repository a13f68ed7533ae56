import type { FeatureRef } from "../../registry/index.ts";
import type { EntityInput, LookupResult, RawRows } from "../../serving/index.ts";
import { STATUS_NAMES, StoredValueGrid, sameEventTimes } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";
import { COMMA, J_NULL, jsonDouble, jsonString, jsonValue } from "./json-bytes.ts";
import { storedJson } from "./stored-json.ts";
import { jsonRfc3339 } from "./rfc3339-bytes.ts";

/**
 * Writes Feast's column-oriented answer — join keys first (request order,
 * echoed as PRESENT at the epoch), then a column per feature — straight into
 * bytes: the same JSON as `JSON.stringify(feastBody(...))`, without the
 * arrays per column or a Date and two strings per timestamp, except that
 * float64 values that are whole numbers are written as floats (`5.0`, and
 * -0 as `-0.0`, as Feast's server writes a double_val: json-bytes.ts, jsonDouble).
 *
 * Feast's FieldStatus has no UNAVAILABLE: Feast routes say NOT_FOUND and flag
 * the response with an `x-quiver-unavailable` header instead.
 * The bytes are a view of the encoder's buffer, valid until its next call.
 */
export class FeastAnswerEncoder {
  private readonly out = new ByteWriter();
  /** Where each requested value is stored. */
  private readonly grid = new StoredValueGrid();

  /**
   * The same answer as `json`, written from the stored bytes of a single-view
   * lookup (LookupService.lookupRaw): each row is indexed once
   * (StoredValueGrid), then written column by column, values transcoded
   * (stored-json.ts). Undefined when a row holds bytes outside the checked
   * shapes (the caller decodes instead).
   */
  jsonRows(rows: RawRows, entities: EntityInput, full: boolean): Uint8Array | undefined {
    // Feast fills no defaults (FEAST_LOOKUP): a missing or null value is null.
    if (rows.fillDefaults || !this.grid.locate(rows)) return undefined;
    const w = this.out;
    w.reset();
    const n = rows.rowCount;
    const refs = rows.refs;
    const nf = refs.length;
    const keys = entities.keyNames;
    this.head(refs, entities, full, n);
    const grid = this.grid;
    // Every feature of a single-view row has the row's event time: the timestamps array is written once, then copied.
    let timesStart = -1;
    let timesEnd = -1;
    for (let c = 0; c < nf; c++) {
      w.bytes(c === 0 && keys.length === 0 ? COLUMN_FIRST : COLUMN_NEXT);
      const double = isDouble(refs[c]!);
      for (let r = 0; r < n; r++) {
        if (r > 0) w.byte(COMMA);
        const p = grid.offset(r, c);
        if (p >= 0) storedJson(w, rows.bytes[r]!, rows.views[r]!, p, rows.end[r]!, double);
        else w.bytes(J_NULL);
      }
      w.bytes(STATUSES);
      for (let r = 0; r < n; r++) {
        if (r > 0) w.byte(COMMA);
        w.bytes(STATUS[grid.status(rows, r, c)]!);
      }
      w.bytes(TIMESTAMPS);
      if (timesStart >= 0) w.again(timesStart, timesEnd);
      else {
        timesStart = w.pos;
        for (let r = 0; r < n; r++) {
          if (r > 0) w.byte(COMMA);
          jsonRfc3339(w, rows.ts[r]!);
        }
        timesEnd = w.pos;
      }
      w.bytes(COLUMN_CLOSE);
    }
    w.bytes(CLOSE);
    return w.written();
  }

  /** The metadata (join key names, then feature names) and the join key columns. */
  private head(refs: readonly FeatureRef[], entities: EntityInput, full: boolean, rows: number): void {
    const w = this.out;
    const keys = entities.keyNames;
    w.bytes(OPEN_NAMES);
    for (let k = 0; k < keys.length; k++) {
      if (k > 0) w.byte(COMMA);
      jsonString(w, keys[k]!);
    }
    for (let c = 0; c < refs.length; c++) {
      if (c > 0 || keys.length > 0) w.byte(COMMA);
      const f = refs[c]!.feature;
      jsonString(w, full ? f.fullName : f.name);
    }
    w.bytes(RESULTS);
    this.keyColumns(entities, rows);
  }

  /** Join keys first, echoed from the request as PRESENT at the epoch. */
  private keyColumns(entities: EntityInput, rows: number): void {
    const w = this.out;
    const keys = entities.keyNames;
    for (let k = 0; k < keys.length; k++) {
      w.bytes(k === 0 ? COLUMN_FIRST : COLUMN_NEXT);
      const key = keys[k]!;
      for (let r = 0; r < rows; r++) {
        if (r > 0) w.byte(COMMA);
        jsonValue(w, entities.value(r, key));
      }
      w.bytes(STATUSES);
      for (let r = 0; r < rows; r++) w.bytes(r === 0 ? PRESENT : COMMA_PRESENT);
      w.bytes(TIMESTAMPS);
      for (let r = 0; r < rows; r++) w.bytes(r === 0 ? EPOCH : COMMA_EPOCH);
      w.bytes(COLUMN_CLOSE);
    }
  }

  json(result: LookupResult, entities: EntityInput, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    const rows = result.rowCount;
    const nf = result.refs.length;
    const keys = entities.keyNames;
    this.head(result.refs, entities, full, rows);
    const { values, statuses, timestamps } = result;
    // The column whose timestamps array was last written out, and where: features of one view share their rows' times,
    // so a column with the same times copies that array instead of formatting each time again.
    let timesCol = -1;
    let timesStart = 0;
    let timesEnd = 0;
    for (let c = 0; c < nf; c++) {
      w.bytes(c === 0 && keys.length === 0 ? COLUMN_FIRST : COLUMN_NEXT);
      const write = isDouble(result.refs[c]!) ? jsonDouble : jsonValue;
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        if (r > 0) w.byte(COMMA);
        write(w, values[at]);
      }
      w.bytes(STATUSES);
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        if (r > 0) w.byte(COMMA);
        w.bytes(STATUS[statuses[at]!]!);
      }
      w.bytes(TIMESTAMPS);
      if (timesCol >= 0 && sameEventTimes(result, timesCol, c)) w.again(timesStart, timesEnd);
      else {
        timesCol = c;
        timesStart = w.pos;
        for (let r = 0, at = c; r < rows; r++, at += nf) {
          if (r > 0) w.byte(COMMA);
          jsonRfc3339(w, timestamps[at]!);
        }
        timesEnd = w.pos;
      }
      w.bytes(COLUMN_CLOSE);
    }
    w.bytes(CLOSE);
    return w.written();
  }
}

/** Does the feature hold float64s (a float64, a float64[] or an embedding)? Its whole numbers are then written as floats (jsonDouble). */
function isDouble(ref: FeatureRef): boolean {
  return ref.feature.floats;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const OPEN_NAMES = ascii('{"metadata":{"feature_names":[');
const RESULTS = ascii(']},"results":[');
const COLUMN_FIRST = ascii('{"values":[');
const COLUMN_NEXT = ascii(',{"values":[');
const STATUSES = ascii('],"statuses":[');
const TIMESTAMPS = ascii('],"event_timestamps":[');
const COLUMN_CLOSE = ascii("]}");
const CLOSE = ascii("]}");
const PRESENT = ascii('"PRESENT"');
const COMMA_PRESENT = ascii(',"PRESENT"');
const EPOCH = ascii('"1970-01-01T00:00:00Z"');
const COMMA_EPOCH = ascii(',"1970-01-01T00:00:00Z"');
const STATUS = STATUS_NAMES.map((n) => ascii(JSON.stringify(n === "UNAVAILABLE" ? "NOT_FOUND" : n)));
