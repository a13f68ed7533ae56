import type { ValueType } from "../../registry/value-types.ts";
import { type LookupResult, sameEventTimes } from "../../serving/index.ts";
import { int64Or0, listOrEmpty, numberOr0, stringOrEmpty } from "./column-values.ts";
import { type ListKind, listBody, listContent, writeListBody } from "./list-bodies.ts";
import { ProtoWriter } from "./proto-writer.ts";
import type { LongLike } from "./values.ts";

/**
 * quiver.v1.LookupResponse written straight from a LookupResult into
 * a ProtoWriter kept between answers: no intermediate message objects and no
 * operation object per field, one packed array per column. Field numbers are those of proto/quiver/v1/feature_service.proto;
 * the tests decode what this writes with the standard (proto-loader) decoder.
 */

/** quiver.v1.ValueType numbers by registry type kind. */
export const VALUE_TYPE: Readonly<Record<ValueType["kind"], number>> = {
  int64: 1,
  float64: 2,
  string: 3,
  bool: 4,
  "int64[]": 5,
  "float64[]": 6,
  "string[]": 7,
  embedding: 8,
};

/** FeatureColumn's field (tag byte) for each list kind: int64_list_values, double_list_values, string_list_values. */
export const LIST_TAG: Readonly<Record<ListKind, number>> = { "int64[]": 50, "float64[]": 58, embedding: 58, "string[]": 66 };

/** An error carried inside a LookupStream answer. */
export interface StreamError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly path: string | undefined;
}

/** A lookup's id, echoed in its answer: a number or protobufjs's Long halves. */
export type Id = number | LongLike;

export function isZeroId(id: Id): boolean {
  return typeof id === "number" ? id === 0 : id.low === 0 && id.high === 0;
}

/** Shared by the encoders below: each call writes one whole message synchronously, then copies it out. */
const writer = new ProtoWriter();
/** A column's `event_timestamps_ms`, kept to be copied into the next columns with the same times (one view's). */
const timesWriter = new ProtoWriter();

export function encodeLookupResponse(result: LookupResult, names: readonly string[], id: Id): Uint8Array {
  const w = writer.reset();
  if (!isZeroId(id)) w.uint32(8).uint64(id);
  for (const name of names) w.uint32(18).string(name);
  const rows = result.rowCount;
  if (rows !== 0) w.uint32(24).uint32(rows);
  const nf = result.refs.length;
  let timesCol = -1;
  for (let c = 0; c < nf; c++) {
    if (rows > 0 && (timesCol < 0 || !sameEventTimes(result, timesCol, c))) {
      timesCol = c;
      const t = timesWriter.reset();
      t.uint32(82).fork();
      for (let r = 0, at = c; r < rows; r++, at += nf) t.int64(result.timestamps[at]!);
      t.ldelim();
    }
    w.uint32(34).fork();
    writeColumn(w, result, c, nf, rows, timesWriter);
    w.ldelim();
  }
  for (const node of result.degraded) w.uint32(42).string(node);
  return w.finish();
}

/** A LookupStream answer for a lookup that failed. */
export function encodeStreamError(id: Id, error: StreamError): Uint8Array {
  const w = writer.reset();
  if (!isZeroId(id)) w.uint32(8).uint64(id);
  w.uint32(50).fork();
  w.uint32(8).int32(error.status);
  w.uint32(18).string(error.code);
  w.uint32(26).string(error.message);
  if (error.path !== undefined) w.uint32(34).string(error.path);
  w.ldelim();
  return w.finish();
}

/** One FeatureColumn; `times` holds its `event_timestamps_ms` field, written by the caller (shared by columns of one view). */
function writeColumn(w: ProtoWriter, result: LookupResult, c: number, nf: number, rows: number, times: ProtoWriter): void {
  const type = result.refs[c]!.feature.type;
  const values = result.values;
  w.uint32(8).int32(VALUE_TYPE[type.kind]);
  if (rows === 0) return;
  switch (type.kind) {
    case "int64":
      w.uint32(18).fork();
      for (let r = 0, at = c; r < rows; r++, at += nf) w.int64(int64Or0(values[at]));
      w.ldelim();
      break;
    case "float64":
      // Packed doubles have a known length: no fork needed.
      w.uint32(26).uint32(rows * 8);
      for (let r = 0, at = c; r < rows; r++, at += nf) w.double(numberOr0(values[at]));
      break;
    case "string":
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        const v = values[at];
        w.uint32(34).string(stringOrEmpty(v));
      }
      break;
    case "bool":
      w.uint32(42).uint32(rows);
      for (let r = 0, at = c; r < rows; r++, at += nf) w.bool(values[at] === true);
      break;
    // A value or list element of another type (stored before a type change) is written as 0 or "" (column-values.ts).
    case "int64[]":
    case "float64[]":
    case "embedding":
    case "string[]": {
      const tag = LIST_TAG[type.kind];
      for (let r = 0, at = c; r < rows; r++, at += nf) {
        const list = listOrEmpty(values[at]);
        const content = listContent(type.kind, list);
        w.uint32(tag).uint32(listBody(type.kind, list.length, content));
        writeListBody(w, type.kind, list, content);
      }
      break;
    }
  }
  const statuses = result.statuses;
  // Statuses are below 128: one byte each, so the packed length is the row count (as QuiverRowsEncoder writes it).
  w.uint32(74).uint32(rows);
  for (let r = 0, at = c; r < rows; r++, at += nf) w.uint32(statuses[at]!);
  w.raw(times.written());
  const stale = result.stale;
  if (stale !== undefined) {
    w.uint32(90).uint32(rows);
    for (let r = 0, at = c; r < rows; r++, at += nf) w.bool(stale[at] === 1);
  }
}

