import { POW10 } from "../../text/decimal.ts";
import type { ByteWriter } from "./byte-writer.ts";

/**
 * JSON written into a ByteWriter with the same text JSON.stringify produces
 * for the same value, without building that string: integers digit by digit,
 * printable-ASCII strings copied, everything else spelled by JSON.stringify.
 */

const ascii = (s: string) => new TextEncoder().encode(s);
export const J_TRUE = ascii("true");
export const J_FALSE = ascii("false");
export const J_NULL = ascii("null");
export const COMMA = 0x2c;

export function jsonNumber(w: ByteWriter, v: number): void {
  if (Number.isSafeInteger(v)) jsonSafeInteger(w, v);
  else jsonOtherNumber(w, v);
}

export function jsonSafeInteger(w: ByteWriter, v: number): void {
  if (v < 0) {
    w.byte(0x2d);
    w.decimal(-v);
  } else w.decimal(v);
}

/** A number that is not a safe integer, as JSON.stringify writes it. */
export function jsonOtherNumber(w: ByteWriter, v: number): void {
  if (fixedDecimal(w, v)) return;
  if (Number.isFinite(v)) w.ascii(String(v));
  else w.bytes(J_NULL); // as JSON.stringify: NaN and ±Infinity are null
}


/** 2^-50: above the relative gap two roundings leave (see fixedDecimal). */
const NEAR = 2 ** -50;

/**
 * Writes a non-integer in the text `String(v)` gives, without the string,
 * when that text is a short fixed-point decimal (feature values mostly are:
 * rates, scores, money); answers false, writing nothing, otherwise.
 *
 * `String(v)` is the shortest decimal that reads back as v. For |v| in
 * [1e-6, 1e15) it is fixed-point, and fewer fraction digits never means more
 * significant ones, so it is n / 10^f for the smallest f where some integer n
 * reads back as v. Division of exact integers is correctly rounded, so
 * `n / 10^f === v` is exactly "the decimal reads back as v". While
 * m = v * 10^f < 2^50, a decimal that reads back lies within 1/8 of m and no
 * two do (they are 1/10^f apart, more than 4 ulps of v), so n = round(m) is
 * the only candidate; beyond that bound this declines.
 */
function fixedDecimal(w: ByteWriter, v: number): boolean {
  const a = v < 0 ? -v : v;
  if (!(a >= 1e-6 && a < 1e15)) return false;
  let from = 1;
  const m4 = a * 10_000;
  if (m4 < 2147483647) {
    // Four fraction digits or fewer (rates, scores, money): the candidate at f = 4 reads back exactly
    // when some shorter one does (the same decimal with zeros appended), so one division settles it,
    // and the shortest form is that candidate without its trailing zeros, counted in int32 arithmetic.
    // A search from f = 1 paid a mispredicted exit per value (~23 against ~13 ns, the demo's mix).
    const n4 = Math.round(m4);
    if (n4 / 10_000 === a) {
      const n = n4 | 0;
      const zeros = (n % 10 === 0 ? 1 : 0) + (n % 100 === 0 ? 1 : 0) + (n % 1000 === 0 ? 1 : 0);
      // Four zeros would be an integer, which the caller writes as one.
      if (zeros === 3 && n % 10_000 === 0) return false;
      if (v < 0) w.byte(0x2d);
      w.fixedPoint(zeros === 0 ? n : (n / (zeros === 1 ? 10 : zeros === 2 ? 100 : 1000)) | 0, 4 - zeros);
      return true;
    }
    // No decimal of four fraction digits or fewer reads back as v.
    from = 5;
  }
  for (let f = from; f < POW10.length; f++) {
    const p = POW10[f]!;
    const m = a * p;
    if (m >= 1125899906842624) return false;
    const n = Math.round(m);
    // Cheap test first: when n / 10^f reads back as a, m lies within n·2^-51.9 of n (two roundings),
    // so a larger gap (every shorter f, nearly always) rules f out without the division. (Were the bound
    // ever too tight, the next f's n would end in 0 and the value would take String(v): slower, never wrong.)
    const gap = m - n;
    if (gap > m * NEAR || gap < -m * NEAR) continue;
    if (n / p !== a) continue;
    // A trailing zero would mean a shorter decimal exists (cannot happen; guards the reasoning above).
    if (n % 10 === 0) return false;
    if (v < 0) w.byte(0x2d);
    w.fixedPoint(n, f);
    return true;
  }
  return false;
}

/** Printable ASCII without `"` or `\` is written as is; anything else as JSON.stringify spells it. */
export function jsonString(w: ByteWriter, s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
      w.utf8String(JSON.stringify(s));
      return;
    }
  }
  w.byte(0x22);
  w.ascii(s);
  w.byte(0x22);
}

/** `.0`: what makes a whole number's digits a float literal. */
export const POINT_ZERO = ascii(".0");

/**
 * Does `String(v)` spell this number without a point or an exponent (a whole
 * number below 1e21), so that a float needs `.0` after it?
 */
export function wholeInDecimal(v: number): boolean {
  return Number.isInteger(v) && v < 1e21 && v > -1e21;
}

/**
 * A float64 value (or a list of them), as Feast's Python server writes a
 * `double_val`: a whole number as a float literal (`5.0`, Python's repr), not
 * `5`, which Python's json reads as an int (Feast's remote online store then
 * types it int64_val), and -0 as `-0.0`. /v1/lookup writes float features so
 * too. Anything else (null, a value stored under an earlier type) as
 * jsonValue writes it.
 */
export function jsonDouble(w: ByteWriter, v: unknown): void {
  if (!Array.isArray(v)) {
    jsonDoubleScalar(w, v);
    return;
  }
  w.byte(0x5b);
  for (let i = 0; i < v.length; i++) {
    if (i > 0) w.byte(COMMA);
    jsonDoubleScalar(w, v[i]);
  }
  w.byte(0x5d);
}

/** One element of jsonDouble (a bigint: a whole number stored as int 64 past 2^53, as storedJson's `double` writes it). */
function jsonDoubleScalar(w: ByteWriter, v: unknown): void {
  if (typeof v === "number") {
    jsonDoubleNumber(w, v);
    return;
  }
  jsonValue(w, v);
  if (typeof v === "bigint") w.bytes(POINT_ZERO);
}

/**
 * A float64 as a float literal: a whole number with `.0` (`5.0`), -0 as
 * `-0.0` (Python's repr, which Feast's server prints; JSON.stringify writes
 * `0`, and `JSON.parse("-0.0")` is -0), everything else as jsonNumber.
 */
export function jsonDoubleNumber(w: ByteWriter, v: number): void {
  if (!wholeInDecimal(v)) {
    jsonOtherNumber(w, v);
    return;
  }
  if (v === 0 && 1 / v < 0) w.byte(0x2d);
  jsonNumber(w, v);
  w.bytes(POINT_ZERO);
}

/** Any value a feature or an echoed join key can hold; undefined is null (as inside arrays). */
export function jsonValue(w: ByteWriter, v: unknown): void {
  switch (typeof v) {
    case "number":
      jsonNumber(w, v);
      return;
    case "bigint":
      // An int64 past 2^53 (src/kv/int64.ts): its exact digits, as an integer literal (as Feast's Python server writes it).
      w.ascii(v.toString());
      return;
    case "string":
      jsonString(w, v);
      return;
    case "boolean":
      w.bytes(v ? J_TRUE : J_FALSE);
      return;
    case "object":
      if (Array.isArray(v)) {
        w.byte(0x5b);
        for (let i = 0; i < v.length; i++) {
          if (i > 0) w.byte(COMMA);
          jsonValue(w, v[i]);
        }
        w.byte(0x5d);
        return;
      }
      if (v !== null) {
        // Not a feature value (an object echoed from a request): rare, so spelled by JSON.stringify.
        w.utf8String(JSON.stringify(v));
        return;
      }
  }
  w.bytes(J_NULL);
}

