import { canonicalInt64, INT64_MAX, inInt64Range, type Int64 } from "../kv/int64.ts";
import type { FeatureValue } from "../kv/kv-node.ts";
import { clipText } from "../text/surrogates.ts";
import { describeValue as describe, type JoinKey, type ValueType } from "../registry/index.ts";

/**
 * Type coercion from a payload value to a registry type, built once per
 * mapped field: upstream schemas spell numbers as strings, flags as 0/1 and
 * ids as numbers, and a source should not need a transform step for that.
 * A coercer returns the value or throws CoercionError with what is wrong.
 */
export type Coercer = (v: unknown) => FeatureValue;

export class CoercionError extends Error {}

/** Digits Number() reads exactly (15); longer integer text is read as a bigint, over int64's whole range. */
const SHORT_INT_TEXT = /^-?\d{1,15}$/;
const INT_TEXT = /^-?\d+$/;
const NUM_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function fail(what: string, v: unknown): never {
  throw new CoercionError(`expected ${what}, got ${describe(v)}`);
}

function toFloat(v: unknown, scale: number): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "bigint") n = Number(v);
  else if (typeof v === "string" && NUM_TEXT.test(v)) n = Number(v);
  else return fail("a number", v);
  n *= scale;
  if (!Number.isFinite(n)) fail("a finite number", v);
  return n;
}

/**
 * An int64: a number, a bigint (a MessagePack int 64 or JSON integer past
 * 2^53, read exactly: payload.ts) or integer text, over [-2^63, 2^63 − 1],
 * kept exact (a bigint past 2^53: src/kv/int64.ts). A scaled value is
 * computed in float64 and must come out a safe integer, as before.
 */
function toInt(v: unknown, scale: number): Int64 {
  if (scale === 1 && (typeof v === "bigint" || (typeof v === "string" && !SHORT_INT_TEXT.test(v) && INT_TEXT.test(v)))) {
    // Text past a sign and 19 significant digits is out of range: refused before a BigInt of it (quadratic in its
    // length). Leading zeros do not count ("000…042" is 42), and are not handed to BigInt either.
    const text = typeof v === "string" ? v.replace(/^(-?)0+(?=\d)/, "$1") : v;
    const b = typeof text === "string" && text.length > 20 ? INT64_MAX + 1n : BigInt(text);
    if (!inInt64Range(b)) throw new CoercionError(`expected an integer in int64's range [-2^63, 2^63 − 1], got ${typeof v === "string" ? `"${clipText(v, 41)}"` : `integer ${v}`}`);
    return canonicalInt64(b);
  }
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "bigint") n = Number(v);
  else if (typeof v === "string" && (SHORT_INT_TEXT.test(v) || (scale !== 1 && NUM_TEXT.test(v)))) n = Number(v);
  else return fail("an integer", v);
  if (scale !== 1) n = Math.round(n * scale);
  if (!Number.isSafeInteger(n)) fail("an integer", v);
  // `+ 0`: -0 (a payload's -0.0, or a small negative scaled and rounded) is 0, stored as an integer (a -0 is kept as float64 -0).
  return n + 0;
}

function toBool(v: unknown): boolean {
  if (typeof v === "boolean") return v;
  if (v === 1 || v === "1" || v === "true") return true;
  if (v === 0 || v === "0" || v === "false") return false;
  return fail("a bool (true/false, 1/0)", v);
}

function toText(v: unknown): string {
  if (typeof v === "string") return v;
  // A bigint: an integer past 2^53 the payload decoders read exactly (its digits, as text, exactly).
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return fail("a string", v);
}

/**
 * A string join key from a string, a boolean, or a number whose text is exact:
 * an integer past 2^53 (a JSON number, a MessagePack uint64) has already lost
 * digits, so 12345678901234567890 and ...891 would be one entity.
 */
function toKeyText(v: unknown): string {
  if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v)) return fail("a string (an integer beyond 2^53 has lost digits as a number; send it as a string)", v);
  if (typeof v === "bigint") return String(v);
  return toText(v);
}

function arrayOf<T>(what: string, element: (x: unknown) => T): (v: unknown) => T[] {
  return (v) => {
    if (!Array.isArray(v)) fail(what, v);
    const out = new Array<T>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = element(v[i]);
    return out;
  };
}

/** A coercer for a feature of type `t`; `scale` multiplies numbers (only numeric types take one). */
export function coercerFor(t: ValueType, scale = 1): Coercer {
  switch (t.kind) {
    case "int64":
      return (v) => toInt(v, scale);
    case "float64":
      return (v) => toFloat(v, scale);
    case "string":
      return toText;
    case "bool":
      return toBool;
    case "int64[]":
      return arrayOf("a list of integers", (x) => toInt(x, scale));
    case "float64[]":
      return arrayOf("a list of numbers", (x) => toFloat(x, scale));
    case "string[]":
      return arrayOf("a list of strings", toText);
    case "embedding": {
      const inner = arrayOf(`embedding(${t.dim})`, (x) => toFloat(x, scale));
      return (v) => {
        const out = inner(v);
        if (out.length !== t.dim) throw new CoercionError(`expected embedding(${t.dim}), got ${out.length} dimensions`);
        return out;
      };
    }
  }
}

/** Join keys: int64 keys accept numbers and decimal strings (checked again by the push path), string keys accept numbers. */
export function keyCoercerFor(key: JoinKey): Coercer {
  if (key.type === "string") return toKeyText;
  return (v) => {
    if (typeof v === "number" || typeof v === "string" || typeof v === "bigint") return v as FeatureValue;
    return fail("an int64 id", v);
  };
}
