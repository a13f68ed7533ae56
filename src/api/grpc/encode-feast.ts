import type protobuf from "protobufjs";
import type { FeatureValue } from "../../kv/kv-node.ts";
import type { ValueType } from "../../registry/value-types.ts";
import { type LookupResult, sameEventTimes } from "../../serving/index.ts";
import { int64Or0, listOrEmpty, numberOr0, stringOrEmpty } from "./column-values.ts";
import { type ListKind, listBody, listContent, writeListBody } from "./list-bodies.ts";
import { ProtoWriter } from "./proto-writer.ts";
import type { FeastValue, LongLike } from "./values.ts";
import { int64Size, nested, stringFieldSize, varint32Size } from "./wire-size.ts";

/**
 * feast.serving.GetOnlineFeaturesResponse written straight from a
 * LookupResult (field numbers from ../shared/reference/feast-serving-api.md):
 * join-key vectors first, echoing the request's values with PRESENT, then one
 * FeatureVector per feature with a feast.types.Value per row in the oneof the
 * registry type calls for, a Value with no field set where there is none. Written on a
 * ProtoWriter kept between answers (no operation object per field, no Long
 * per timestamp); tests check the bytes against protobufjs's own encoding of
 * the same message.
 */

/** Quiver statuses → Feast FieldStatus numbers: UNAVAILABLE (5) has no Feast name and goes out as NOT_FOUND (3). */
export const FEAST_STATUS = Uint8Array.of(0, 1, 2, 3, 4, 3);

/** A join key's echoed vector: the request's own Value messages, re-encoded as they came. */
export interface KeyVector {
  readonly name: string;
  readonly values: readonly unknown[];
}

/** A feature view read by the lookup, for `include_feature_view_version_metadata`. */
export interface ViewVersion {
  readonly name: string;
  readonly version: number;
}

/** What every answer starts with: metadata and the key vectors, then the feature vectors (FeastWriter.vector*). */
export class FeastWriter {
  readonly w = new ProtoWriter();

  /** `valueType`: feast.types.Value, for echoing a key Value of a kind written here by hand. */
  constructor(private readonly valueType: protobuf.Type) {}

  /** Resets the writer and writes metadata and the key vectors (`rows` values each). */
  head(keys: readonly KeyVector[], names: readonly string[], rows: number, viewVersions: readonly ViewVersion[] | undefined): ProtoWriter {
    const w = this.w.reset();
    // metadata { feature_names { val }, feature_view_metadata { name, version }* }
    w.uint32(10).fork().uint32(10).fork();
    for (const k of keys) w.uint32(10).string(k.name);
    for (const n of names) w.uint32(10).string(n);
    w.ldelim();
    if (viewVersions !== undefined) {
      for (const v of viewVersions) {
        w.uint32(18).fork().uint32(10).string(v.name);
        if (v.version !== 0) w.uint32(16).int32(v.version);
        w.ldelim();
      }
    }
    w.ldelim();
    for (const k of keys) {
      w.uint32(18).fork();
      for (let r = 0; r < rows; r++) {
        w.uint32(10).fork();
        const v = k.values[r];
        if (v !== undefined && v !== null) this.keyValue(v as FeastValue);
        w.ldelim();
      }
      if (rows > 0) w.uint32(18).uint32(rows);
      for (let r = 0; r < rows; r++) w.uint32(1);
      for (let r = 0; r < rows; r++) w.uint32(26).uint32(0);
      w.ldelim();
    }
    return w;
  }

  /** A request's key Value, as protobufjs would encode it: the usual kinds by hand, the others through protobufjs. */
  private keyValue(v: FeastValue): void {
    const w = this.w;
    switch (v.val) {
      case "int64_val":
        w.uint32(32).uint64(v.int64_val as number | LongLike);
        return;
      case "string_val":
        w.uint32(18).string(v.string_val as string);
        return;
      case "int32_val":
        w.uint32(24).int32(v.int32_val as number);
        return;
      default:
        w.raw(this.valueType.encode(v as unknown as protobuf.Message).finish());
    }
  }

  /** Ends the answer (`status: true`) and hands out a copy. */
  finish(): Uint8Array {
    return this.w.uint32(24).bool(true).finish();
  }
}

/** The FeatureVector's `event_timestamps` entry for an event time in ms (0: none, an empty Timestamp). */
export function writeTimestamp(w: ProtoWriter, ms: number): void {
  if (ms === 0) {
    w.uint32(26).uint32(0);
    return;
  }
  // Times are whole ms (parseEventTime); floored anyway, so nanos stays below 1e9 as Timestamp requires.
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.floor(ms - seconds * 1000) * 1e6;
  w.uint32(26).uint32(1 + int64Size(seconds) + (nanos !== 0 ? 1 + varint32Size(nanos) : 0));
  w.uint32(8).int64(seconds);
  if (nanos !== 0) w.uint32(16).int32(nanos);
}

/**
 * A Value with no field of its oneof set, inside a FeatureVector's `values`:
 * what Feast's servers answer where there is no value (Python `ValueProto()`,
 * Go `types.Value{}`). It was `null_val`, which Feast's own reader
 * (`feast_value_type_to_python_type`) returns as its enum number, 0: a missing
 * value read as 0.
 */
export function writeMissingValue(w: ProtoWriter): void {
  w.uint32(10).uint32(0);
}

/** The answer from a LookupResult (the decoding path: Redis shards, caches, several views). */
export class FeastResponseEncoder {
  private readonly out: FeastWriter;
  /** A feature's `event_timestamps`, kept to be copied into the next features with the same times (one view's). */
  private readonly times = new ProtoWriter();

  constructor(valueType: protobuf.Type) {
    this.out = new FeastWriter(valueType);
  }

  encode(result: LookupResult, keys: readonly KeyVector[], names: readonly string[], viewVersions?: readonly ViewVersion[]): Uint8Array {
    const rows = result.rowCount;
    const w = this.out.head(keys, names, rows, viewVersions);
    const nf = result.refs.length;
    const times = this.times;
    let timesCol = -1;
    for (let c = 0; c < nf; c++) {
      w.uint32(18).fork();
      writeVector(w, result, c, nf, rows);
      if (timesCol < 0 || !sameEventTimes(result, timesCol, c)) {
        timesCol = c;
        times.reset();
        for (let r = 0, at = c; r < rows; r++, at += nf) writeTimestamp(times, result.timestamps[at]!);
      }
      w.raw(times.written());
      w.ldelim();
    }
    return this.out.finish();
  }
}

/** A FeatureVector's values and statuses; its event_timestamps follow (FeastResponseEncoder.encode). */
function writeVector(w: ProtoWriter, result: LookupResult, c: number, nf: number, rows: number): void {
  const kind = result.refs[c]!.feature.type.kind;
  const write = VALUE_WRITERS[kind];
  const size = VALUE_SIZES[kind];
  const values = result.values;
  // Each Value's length is computed up front, so no nested message is moved into place.
  for (let r = 0, at = c; r < rows; r++, at += nf) {
    const v = values[at];
    if (v === null || v === undefined) writeMissingValue(w);
    else {
      w.uint32(10).uint32(size(v));
      write(w, v);
    }
  }
  const statuses = result.statuses;
  // Statuses are 0..4 after mapping: one byte each, so the packed length is the row count (an empty packed field is left out).
  if (rows > 0) w.uint32(18).uint32(rows);
  for (let r = 0, at = c; r < rows; r++, at += nf) w.uint32(FEAST_STATUS[statuses[at]!]!);
}

type ValueWriter = (w: ProtoWriter, v: FeatureValue) => void;

/**
 * One writer per registry type kind, chosen once per column. A value not of
 * the column's type (stored before a type change) is written as the type's
 * empty value, as the quiver.v1 encoder writes it (column-values.ts).
 */
const VALUE_WRITERS: Readonly<Record<ValueType["kind"], ValueWriter>> = {
  int64: (w, v) => w.uint32(32).int64(int64Or0(v)),
  float64: (w, v) => w.uint32(41).double(numberOr0(v)),
  string: (w, v) => w.uint32(18).string(stringOrEmpty(v)),
  bool: (w, v) => w.uint32(56).bool(v === true),
  "int64[]": (w, v) => writeList(w, "int64[]", v),
  "float64[]": (w, v) => writeList(w, "float64[]", v),
  embedding: (w, v) => writeList(w, "embedding", v),
  "string[]": (w, v) => writeList(w, "string[]", v),
};

/** Value's oneof field (tag byte) for each list kind: int64_list_val, double_list_val, string_list_val. */
export const VALUE_LIST_TAG: Readonly<Record<ListKind, number>> = { "int64[]": 114, "float64[]": 122, embedding: 122, "string[]": 98 };

function writeList(w: ProtoWriter, kind: ListKind, v: FeatureValue): void {
  const list = listOrEmpty(v);
  const content = listContent(kind, list);
  w.uint32(VALUE_LIST_TAG[kind]).uint32(listBody(kind, list.length, content));
  writeListBody(w, kind, list, content);
}

/** Size of a Value holding a list (tag, length, body). */
function listValueSize(kind: ListKind, v: FeatureValue): number {
  const list = listOrEmpty(v);
  return nested(1, listBody(kind, list.length, listContent(kind, list)));
}

/** Encoded size of a Value message (tag + payload) per registry type kind, matching VALUE_WRITERS. */
const VALUE_SIZES: Readonly<Record<ValueType["kind"], (v: FeatureValue) => number>> = {
  int64: (v) => 1 + int64Size(int64Or0(v)),
  float64: () => 9,
  string: (v) => stringFieldSize(stringOrEmpty(v)),
  bool: () => 2,
  "int64[]": (v) => listValueSize("int64[]", v),
  "float64[]": (v) => listValueSize("float64[]", v),
  embedding: (v) => listValueSize("embedding", v),
  "string[]": (v) => listValueSize("string[]", v),
};
