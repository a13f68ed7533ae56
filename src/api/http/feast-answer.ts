import type { EntityInput, LookupResult } from "../../serving/index.ts";
import { STATUS_NAMES } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";
import { COMMA, jsonString, jsonValue } from "./json-bytes.ts";
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

  json(result: LookupResult, entities: EntityInput, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    const rows = result.rowCount;
    const nf = result.refs.length;
    const keys = entities.keyNames;
    w.bytes(OPEN_NAMES);
    for (let k = 0; k < keys.length; k++) {
      if (k > 0) w.byte(COMMA);
      jsonString(w, keys[k]!);
    }
    for (let c = 0; c < nf; c++) {
      if (c > 0 || keys.length > 0) w.byte(COMMA);
      const f = result.refs[c]!.feature;
      jsonString(w, full ? f.fullName : f.name);
    }
    w.bytes(RESULTS);
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
