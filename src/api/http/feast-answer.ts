import { indexRowValues } from "../../kv/row-index.ts";
import type { FeatureRef } from "../../registry/index.ts";
import type { EntityInput, LookupResult, RawRows } from "../../serving/index.ts";
import { STATUS_NAMES, Status } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";
import { COMMA, J_NULL, jsonString, jsonValue } from "./json-bytes.ts";
import { storedJson } from "./stored-json.ts";
import { jsonRfc3339 } from "./rfc3339-bytes.ts";

/**
 * Writes Feast's column-oriented answer — join keys first (request order,
 * echoed as PRESENT at the epoch), then a column per feature — straight into
 * bytes: the same JSON as `JSON.stringify(feastBody(...))`, without the
 * arrays per column or a Date and two strings per timestamp.
 *
 * Feast's FieldStatus has no UNAVAILABLE: Feast routes say NOT_FOUND and flag
 * the response with an `x-quiver-unavailable` header instead.
 * The bytes are a view of the encoder's buffer, valid until its next call.
 */
export class FeastAnswerEncoder {
  private readonly out = new ByteWriter();
  /** Value offsets of every stored row, row-major (row r's at r * stride). */
  private offsets = new Int32Array(4096);
  /** Values per row in `offsets` (-1: row not found). */
  private counts = new Int32Array(64);

  /**
   * The same answer as `json`, written from the stored bytes of a single-view
   * lookup (LookupService.lookupRaw): each row is indexed once, then written
   * column by column, values transcoded (stored-json.ts). Feast fills no
   * defaults: a missing or null value is null. Undefined when a row holds
   * bytes outside the checked shapes (the caller decodes instead).
   */
  jsonRows(rows: RawRows, entities: EntityInput, full: boolean): Uint8Array | undefined {
    const n = rows.rowCount;
    // Room for every value of the view's rows (a row wider than its view, written before a schema change, declines).
    const stride = (rows.refs[0]?.view.features.length ?? 0) + 1;
    if (this.offsets.length < n * stride) this.offsets = new Int32Array(n * stride);
    if (this.counts.length < n) this.counts = new Int32Array(n);
    const offsets = this.offsets;
    const counts = this.counts;
    for (let r = 0; r < n; r++) {
      const bytes = rows.bytes[r];
      if (bytes === undefined) {
        counts[r] = -1;
        continue;
      }
      const c = indexRowValues(bytes, rows.views[r]!, rows.start[r]!, rows.end[r]!, offsets, r * stride, stride);
      if (c < 0) return undefined;
      counts[r] = c;
    }
    return this.writeRows(rows, entities, full, stride);
  }

  private writeRows(rows: RawRows, entities: EntityInput, full: boolean, stride: number): Uint8Array {
    const w = this.out;
    w.reset();
    const n = rows.rowCount;
    const refs = rows.refs;
    const nf = refs.length;
    const keys = entities.keyNames;
    this.head(refs, entities, full, n);
    const offsets = this.offsets;
    const counts = this.counts;
    for (let c = 0; c < nf; c++) {
      w.bytes(c === 0 && keys.length === 0 ? COLUMN_FIRST : COLUMN_NEXT);
      const fi = refs[c]!.feature.index;
      for (let r = 0; r < n; r++) {
        if (r > 0) w.byte(COMMA);
        const bytes = rows.bytes[r];
        const at = r * stride + fi;
        if (bytes !== undefined && fi < counts[r]! && bytes[offsets[at]!] !== NIL) storedJson(w, bytes, rows.views[r]!, offsets[at]!);
        else w.bytes(J_NULL);
      }
      w.bytes(STATUSES);
      for (let r = 0; r < n; r++) {
        if (r > 0) w.byte(COMMA);
        const bytes = rows.bytes[r];
        const st = bytes === undefined ? Status.NOT_FOUND : fi < counts[r]! && bytes[offsets[r * stride + fi]!] !== NIL ? rows.status[r]! : Status.NULL_VALUE;
        w.bytes(STATUS[st]!);
      }
      w.bytes(TIMESTAMPS);
      for (let r = 0; r < n; r++) {
        if (r > 0) w.byte(COMMA);
        jsonRfc3339(w, rows.ts[r]!);
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
    for (let c = 0; c < nf; c++) {
      w.bytes(c === 0 && keys.length === 0 ? COLUMN_FIRST : COLUMN_NEXT);
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        if (r > 0) w.byte(COMMA);
        jsonValue(w, values[at]);
      }
      w.bytes(STATUSES);
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        if (r > 0) w.byte(COMMA);
        w.bytes(STATUS[statuses[at]!]!);
      }
      w.bytes(TIMESTAMPS);
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        if (r > 0) w.byte(COMMA);
        jsonRfc3339(w, timestamps[at]!);
      }
      w.bytes(COLUMN_CLOSE);
    }
    w.bytes(CLOSE);
    return w.written();
  }
}

/** MessagePack nil: a value stored as null. */
const NIL = 0xc0;

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
