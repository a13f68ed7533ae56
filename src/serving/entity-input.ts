import { invalid } from "../errors/index.ts";
import type { KeyBatch } from "../kv/key-batch.ts";
import { encodeKeyPart } from "../kv/keys.ts";
import type { JoinKey } from "../registry/index.ts";
import { describeValue } from "../registry/index.ts";
import { writtenAsFloat } from "../text/exact-json.ts";
import { loneSurrogateAt } from "../text/surrogates.ts";

/**
 * Entity rows as a request gives them: a list of objects (row form) or a map
 * of equal-length lists (Feast's columnar form). Both answer `value(row, key)`
 * so key building does not care which form arrived.
 */
export interface EntityInput {
  readonly rowCount: number;
  /** Join keys named by the request, in request order (Feast echoes them first). */
  readonly keyNames: readonly string[];
  value(row: number, key: string): unknown;
  /** Where a value sits in the request, for error messages. */
  pathOf(row: number, key: string): string;
}

const MAX_STRING_KEY = 1024;
const INT64_TEXT = /^-?(0|[1-9][0-9]{0,18})$/;
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** Row form: `[{ "driver_id": 1001 }, ...]`. */
export class RowEntities implements EntityInput {
  readonly rowCount: number;
  readonly keyNames: readonly string[];
  constructor(
    private readonly rows: readonly Record<string, unknown>[],
    private readonly base: string,
  ) {
    this.rowCount = rows.length;
    const first = rows[0];
    this.keyNames = first ? Object.keys(first) : [];
  }
  value(row: number, key: string): unknown {
    return this.rows[row]![key];
  }
  /** Puts `v` in place of value (row, key): planLookup gives an echoed key its join key's type (LookupDialect.typedEcho). */
  replace(row: number, key: string, v: unknown): void {
    (this.rows[row] as Record<string, unknown>)[key] = v;
  }
  /** Was value (row, key) a whole number written as a float literal, `1.0` (a body read with parseJsonNotingFloats)? */
  writtenAsFloat(row: number, key: string): boolean {
    return writtenAsFloat(this.rows[row]!, key);
  }
  pathOf(row: number, key: string): string {
    return `${this.base}[${row}].${key}`;
  }
}

/** Columnar form: `{ "driver_id": [1001, 1002] }`. */
export class ColumnEntities implements EntityInput {
  readonly rowCount: number;
  readonly keyNames: readonly string[];
  constructor(
    private readonly columns: Readonly<Record<string, readonly unknown[]>>,
    private readonly base: string,
  ) {
    this.keyNames = Object.keys(columns);
    this.rowCount = this.keyNames.length === 0 ? 0 : columns[this.keyNames[0]!]!.length;
  }
  value(row: number, key: string): unknown {
    const col = this.columns[key];
    return col === undefined ? undefined : col[row];
  }
  /** As RowEntities.replace. */
  replace(row: number, key: string, v: unknown): void {
    const col = this.columns[key] as unknown[] | undefined;
    if (col !== undefined) col[row] = v;
  }
  /** As RowEntities.writtenAsFloat. */
  writtenAsFloat(row: number, key: string): boolean {
    const col = this.columns[key];
    return col !== undefined && writtenAsFloat(col, String(row));
  }
  pathOf(row: number, key: string): string {
    return `${this.base}.${key}[${row}]`;
  }
}

/**
 * One row whose fields came from different parts of a message, each named
 * where the client put it (Feast's gRPC push: `features` holds text values,
 * `typed_features` typed ones), so an error names that field.
 */
export class MessageRow implements EntityInput {
  readonly rowCount = 1;
  readonly keyNames: readonly string[];
  constructor(
    private readonly values: Readonly<Record<string, unknown>>,
    private readonly paths: Readonly<Record<string, string>>,
  ) {
    this.keyNames = Object.keys(values);
  }
  value(_row: number, key: string): unknown {
    return this.values[key];
  }
  pathOf(_row: number, key: string): string {
    return this.paths[key] ?? key;
  }
}

/**
 * Parses a request's `entities` field (either form), checking shape and the
 * row limit. Throws QuiverError 400 naming the path.
 */
export function parseEntities(raw: unknown, path: string, maxRows: number): RowEntities | ColumnEntities {
  if (Array.isArray(raw)) {
    if (raw.length > maxRows) throw invalid("too_many_rows", path, `${raw.length} entity rows; the limit is ${maxRows}`);
    for (let i = 0; i < raw.length; i++) {
      const r = raw[i];
      if (r === null || typeof r !== "object" || Array.isArray(r)) throw invalid("invalid_entity", `${path}[${i}]`, `expected an object of join keys, got ${describeValue(r)}`);
    }
    return new RowEntities(raw as Record<string, unknown>[], path);
  }
  if (raw !== null && typeof raw === "object") {
    const cols = raw as Record<string, unknown>;
    let length = -1;
    for (const name of Object.keys(cols)) {
      const col = cols[name];
      if (!Array.isArray(col)) throw invalid("invalid_entity", `${path}.${name}`, `expected a list of values, got ${describeValue(col)}`);
      if (length >= 0 && col.length !== length) throw invalid("invalid_entity", `${path}.${name}`, `has ${col.length} values; the entity columns before it have ${length}`);
      length = col.length;
    }
    if (length > maxRows) throw invalid("too_many_rows", path, `${length} entity rows; the limit is ${maxRows}`);
    return new ColumnEntities(cols as Record<string, unknown[]>, path);
  }
  throw invalid("invalid_request", path, `expected a list of entity rows or a map of join key to values, got ${describeValue(raw)}`);
}

/**
 * Canonical key part for one join-key value, or a thrown 400. int64 keys take an
 * integer (a number, or a bigint past 2^53) or a decimal string; all
 * spell the same key, so 1001 and "1001" find the same int64 entity, while a
 * string key "1001" stays a different entity.
 */
export function keyPart(key: JoinKey, v: unknown, path: string): string {
  return encodedPart(key, v, "") ?? badKey(key, v, path);
}

/** `prefix` + the key part, or undefined when the value is not a valid key (badKey says why). */
function encodedPart(key: JoinKey, v: unknown, prefix: string): string | undefined {
  if (key.type === "int64") {
    if (typeof v === "number") return Number.isSafeInteger(v) ? encodeKeyPart(key.name, "int64", v, prefix) : undefined;
    // A bigint: a JSON number past 2^53 read exactly (body.ts) or a MessagePack int 64: the key its decimal text spells.
    const text = typeof v === "bigint" ? bigKeyText(v) : int64Text(v);
    return text === undefined ? undefined : encodeKeyPart(key.name, "int64", text, prefix);
  }
  return isStringKey(v) ? encodeKeyPart(key.name, "string", v, prefix) : undefined;
}

/** An int64 given as text, spelled canonically ("-0" is "0"), or undefined when it is not one. */
function int64Text(v: unknown): string | undefined {
  if (typeof v !== "string" || !INT64_TEXT.test(v)) return undefined;
  if (v.length >= 19) {
    const b = BigInt(v);
    if (b > INT64_MAX || b < INT64_MIN) return undefined;
  }
  return v === "-0" ? "0" : v;
}

/** A bigint join key's canonical text (the same key as its decimal string), or undefined beyond int64. */
function bigKeyText(v: bigint): string | undefined {
  return v > INT64_MAX || v < INT64_MIN ? undefined : v.toString();
}

/**
 * A string key within the length bound and with a UTF-8 form: keys are stored
 * as UTF-8, where a lone surrogate (JSON's "\ud800" escape allows one) would
 * become U+FFFD, so "a\ud800", "a\udfff" and "a\ufffd" would be one entity
 * and a push to one overwrite the others.
 */
function isStringKey(v: unknown): v is string {
  return typeof v === "string" && v.length <= MAX_STRING_KEY && v.isWellFormed();
}

/** Key part written by `putPart`; NOT_ASCII: a string key the byte path cannot carry (the caller reads by strings). */
const PUT = 0;
const INVALID = 1;
const NOT_ASCII = 2;

/** The bytes of `encodedPart(key, v, "")` appended to the batch's current key, with its verdict. */
function putPart(key: JoinKey, v: unknown, out: KeyBatch): number {
  if (key.type === "int64") {
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) return INVALID;
      out.put(key.partHead);
      out.integer(v);
      return PUT;
    }
    const text = typeof v === "bigint" ? bigKeyText(v) : int64Text(v);
    if (text === undefined) return INVALID;
    out.put(key.partHead);
    out.ascii(text);
    return PUT;
  }
  if (!isStringKey(v)) return INVALID;
  out.put(key.partHead);
  out.integer(v.length);
  out.byte(0x3a);
  return out.ascii(v) ? PUT : NOT_ASCII;
}

/**
 * The storage keys of `entityKeys(input, joinKeys, prefix)` written as bytes
 * into `out` (reset first), without a string per row: for raw reads. Answers
 * false when some string key is not ASCII (the batch cannot carry it: read by
 * strings instead); throws the same 400s as `entityKeys` for invalid values.
 */
export function entityKeyBytes(input: EntityInput, joinKeys: readonly JoinKey[], prefix: Uint8Array, out: KeyBatch): boolean {
  out.reset();
  const n = input.rowCount;
  for (let r = 0; r < n; r++) {
    out.begin(prefix);
    for (let j = 0; j < joinKeys.length; j++) {
      const k = joinKeys[j]!;
      if (j > 0) out.byte(0x3b);
      const v = input.value(r, k.name);
      const verdict = putPart(k, v, out);
      if (verdict === INVALID) badKey(k, v, input.pathOf(r, k.name));
      if (verdict === NOT_ASCII) return false;
    }
    out.finish();
  }
  return true;
}

/** Where the first lone surrogate of `s` is, as `\udxxx at index i`. */
function loneSurrogate(s: string): string {
  const i = loneSurrogateAt(s);
  return `\\u${s.charCodeAt(i).toString(16)} at index ${i}`;
}

/** The 400 for a value encodedPart refused; only reached on bad input, so its path is built only then. */
function badKey(key: JoinKey, v: unknown, path: string): never {
  if (v === undefined) throw invalid("invalid_entity", path, `missing join key "${key.name}" (${key.type})`);
  if (key.type === "int64") {
    if ((typeof v === "string" && INT64_TEXT.test(v)) || typeof v === "bigint") throw invalid("invalid_entity", path, `int64 out of range: ${v}`);
    if (typeof v === "number" && Number.isInteger(v)) {
      // Past 2^53 a JSON number parsed without its text (a v1 lookup: body.ts, exactIntegers) has lost its last digits.
      throw invalid("invalid_entity", path, `an integer past 2^53 sent as a JSON number arrives rounded (read as ${BigInt(v)}); send an int64 this large as a decimal string (or in MessagePack)`);
    }
    throw invalid("invalid_entity", path, `expected int64 (an integer or decimal string in [-2^63, 2^63 − 1]), got ${describeValue(v)}`);
  }
  if (typeof v === "string") {
    if (v.length > MAX_STRING_KEY) throw invalid("invalid_entity", path, `string join key longer than ${MAX_STRING_KEY} UTF-16 code units (${v.length})`);
    throw invalid("invalid_entity", path, `string join key with a lone surrogate (${loneSurrogate(v)}), which UTF-8 cannot store: it would be the same key as one with U+FFFD in its place`);
  }
  throw invalid("invalid_entity", path, `expected string, got ${describeValue(v)}`);
}

/**
 * Keys for every row, for one join-key set: `prefix` (a view's storage-key
 * prefix, or "" for bare entity keys) + the entity key. One string built per
 * row; a row's error path is spelled only when its value is refused.
 */
export function entityKeys(input: EntityInput, joinKeys: readonly JoinKey[], prefix = ""): string[] {
  const n = input.rowCount;
  const out = new Array<string>(n);
  if (joinKeys.length === 1) {
    const k = joinKeys[0]!;
    for (let r = 0; r < n; r++) {
      const v = input.value(r, k.name);
      out[r] = encodedPart(k, v, prefix) ?? badKey(k, v, input.pathOf(r, k.name));
    }
    return out;
  }
  for (let r = 0; r < n; r++) {
    let s = prefix;
    for (let j = 0; j < joinKeys.length; j++) {
      const k = joinKeys[j]!;
      const v = input.value(r, k.name);
      s = encodedPart(k, v, j === 0 ? s : `${s};`) ?? badKey(k, v, input.pathOf(r, k.name));
    }
    out[r] = s;
  }
  return out;
}
