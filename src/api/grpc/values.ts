import { invalid } from "../../errors/index.ts";
import { parseJsonExact } from "../../text/exact-json.ts";
import { int64Of as canonicalInt64Of } from "../../kv/int64.ts";
import { clipText } from "../../text/surrogates.ts";
import type { ValueType } from "../../registry/value-types.ts";

/** A protobufjs int64 as decoded: a Long (when the `long` package is there) or a number. */
export interface LongLike {
  readonly low: number;
  readonly high: number;
  toNumber(): number;
  toString(): string;
}

/**
 * An int64 from the wire: a number when it is a safe integer, else its exact
 * decimal text, which join keys and int64 features both accept (an int64
 * feature stores it as a bigint: src/kv/int64.ts).
 */
export function int64Of(v: number | LongLike): number | string {
  if (typeof v === "number") return v;
  // An unsafe int64 converts to a number of magnitude 2^53 or more (rounded), which is not a safe integer.
  const n = v.toNumber();
  return Number.isSafeInteger(n) ? n : v.toString();
}

/** A decoded feast.types.Value (protobufjs message: the `val` getter names the set field). */
export interface FeastValue {
  readonly val?: string;
  readonly [field: string]: unknown;
}

/**
 * A Feast Value as a plain JS value, the shape the serving layer validates:
 * scalars as numbers/strings/booleans, lists as arrays, `null_val` as null,
 * no value set as undefined. Bytes and 32-bit/float types map to their nearest
 * Quiver types; the registry's checks then accept or reject them with a path.
 * Bytes become a string only when they are UTF-8: others are a 400 naming
 * `path` (read as U+FFFD, two different byte strings would be one key, or a
 * value would not read back as written; HTTP writes refuse them too).
 */
export function plainOfFeastValue(v: FeastValue | undefined, path: string): unknown {
  if (v === undefined || v === null) return undefined;
  switch (v.val) {
    case "int64_val":
    case "unix_timestamp_val":
      return int64Of(v[v.val] as LongLike);
    case "int32_val":
    case "double_val":
    case "float_val":
    case "string_val":
    case "bool_val":
      return v[v.val];
    case "bytes_val":
      return utf8Of(v.bytes_val as Uint8Array, path);
    case "int64_list_val":
    case "unix_timestamp_list_val":
      return ((v[v.val] as { val: LongLike[] }).val ?? []).map(int64Of);
    case "int32_list_val":
    case "double_list_val":
    case "float_list_val":
    case "string_list_val":
    case "bool_list_val":
      return [...((v[v.val] as { val: unknown[] }).val ?? [])];
    case "bytes_list_val":
      return ((v.bytes_list_val as { val: Uint8Array[] }).val ?? []).map((b, i) => utf8Of(b, `${path}[${i}]`));
    case "null_val":
      return null;
    default:
      return undefined;
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function utf8Of(bytes: Uint8Array, path: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw invalid("invalid_value", path, "bytes_val is not UTF-8; Quiver stores text (send string_val, or encode the bytes, e.g. as base64)");
  }
}

const INT_TEXT = /^-?\d+$/;
const LEADING_ZEROS = /^(-?)0+(?=\d)/;
const FLOAT_TEXT = /^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|Infinity)$/;
const BOOL_TEXT: Readonly<Record<string, boolean>> = { true: true, True: true, TRUE: true, "1": true, false: false, False: false, FALSE: false, "0": false };

/**
 * A value Feast's push clients sent as text (`PushRequest.features`), parsed by
 * the column's registry type. Lists are JSON arrays. Throws a validation error
 * naming `path` when the text does not parse; a value that parses but does not
 * fit is left for the registry's check.
 */
/** How a pushed text column is parsed: by its feature's type, as a join key, as the event time, or left as text. */
export type TextColumn = ValueType["kind"] | "int64-key" | "string-key" | "time" | undefined;

export function plainOfText(text: string, type: TextColumn, path: string): unknown {
  switch (type) {
    case undefined:
    case "string":
    case "string-key":
      return text;
    case "int64-key":
      return text.trim();
    case "time":
      return /^\d+$/.test(text) ? Number(text) : text;
    case "int64": {
      // Exact over int64's whole range (a bigint past 2^53); digits beyond it stay text, for the registry's check to refuse.
      const t = text.trim();
      if (!INT_TEXT.test(t)) throw invalid("invalid_value", path, `expected an int64 as text, got "${clipText(text, 41)}"`);
      const digits = t.replace(LEADING_ZEROS, "$1");
      return canonicalInt64Of(digits) ?? digits;
    }
    case "float64": {
      // Decimal or exponent notation (and the Infinity Number() reads, left to the registry's check); Number() alone also took "0x10" and "0b1".
      const t = text.trim();
      const n = FLOAT_TEXT.test(t) ? Number(t) : Number.NaN;
      if (t === "" || Number.isNaN(n)) throw invalid("invalid_value", path, `expected a float64 as text, got "${clipText(text, 41)}"`);
      return n;
    }
    case "bool": {
      const b = BOOL_TEXT[text.trim()];
      if (b === undefined) throw invalid("invalid_value", path, `expected true or false as text, got "${clipText(text, 41)}"`);
      return b;
    }
    default:
      try {
        return parseJsonExact(text);
      } catch {
        throw invalid("invalid_value", path, `expected a JSON list for ${type}, got "${clipText(text, 41)}"`);
      }
  }
}
