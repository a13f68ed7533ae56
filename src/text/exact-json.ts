/**
 * JSON.parse that keeps integers past 2^53 exact. JSON.parse rounds a number
 * literal to a float64, so 9007199254740993 arrives as ...992; an int64 (a
 * feature value, a join key) needs the digits. JavaScriptCore passes each
 * value's source text to a reviver (JSON.parse source text access), from
 * which such a literal becomes a bigint (src/kv/int64.ts). A reviver makes
 * the parse several times slower, so it runs only on text that holds a run of
 * 16 or more digits — every integer literal at or past 2^53 (16 digits) is
 * one; ordinary bodies take the native parse as before.
 */

/** What JavaScriptCore passes a reviver as its third argument. */
interface ReviverContext {
  readonly source?: string;
}

const INTEGER_LITERAL = /^-?\d+$/;

/**
 * Longest literal made exact: a sign and 40 digits, past int64 and uint64 (20) so an error can quote the digits
 * sent, as far as messages quote them (40 characters). A longer one is out of range anyway and stays the float
 * JSON.parse gave (refused as an int64 where one is wanted): BigInt of a 4 MiB run of digits took seconds of the
 * serving thread, and quoting it made a 4 MB error.
 */
const LONGEST_EXACT = 41;

function exactIntegers(_key: string, v: unknown, ctx?: ReviverContext): unknown {
  if (typeof v !== "number" || Number.isSafeInteger(v)) return v;
  const source = ctx?.source;
  return source !== undefined && source.length <= LONGEST_EXACT && INTEGER_LITERAL.test(source) ? BigInt(source) : v;
}

/** JSON.parse(text), with integer literals outside the safe range as bigints. Throws as JSON.parse does. */
export function parseJsonExact(text: string): unknown {
  return hasLongDigitRun(text) ? JSON.parse(text, exactIntegers as (k: string, v: unknown) => unknown) : JSON.parse(text);
}

/**
 * Where a body read by parseJsonNotingFloats wrote a whole number as a float
 * literal (`1.0`, `1e2`, `-0.0`): the object or array holding it → its keys.
 * JSON.parse gives `1.0` and `1` the same number, but Feast reads a string
 * join key with Python's str(): 1 is the key "1", 1.0 the key "1.0".
 * Weak: an entry goes with the parsed body; nothing to reset.
 */
const wholeFloats = new WeakMap<object, Set<string>>();

/**
 * A point or an exponent after a digit: text that may hold a float literal (or a string that looks so). The
 * lookbehind matters: /\d[.eE]/ retried at every digit, 2.75 µs on a 100-id lookup body (886 chars) against
 * 0.20 µs (JSON.parse of it: 1.1 µs); a 1-id body takes 0.3 µs either way.
 */
const FLOAT_AFTER_DIGIT = /(?<=\d)[.eE]/;

function exactNotingFloats(this: object, key: string, v: unknown, ctx?: ReviverContext): unknown {
  if (typeof v !== "number" || !Number.isInteger(v)) return v;
  const source = ctx?.source;
  if (source === undefined) return v;
  if (!INTEGER_LITERAL.test(source)) {
    const keys = wholeFloats.get(this);
    if (keys === undefined) wholeFloats.set(this, new Set([key]));
    else keys.add(key);
    return v;
  }
  return Number.isSafeInteger(v) || source.length > LONGEST_EXACT ? v : BigInt(source);
}

/**
 * parseJsonExact, also noting each whole number written as a float literal
 * (writtenAsFloat). Only text with a digit before a point or an exponent takes
 * the reviver; other bodies (a lookup's ids and names) parse as parseJsonExact.
 */
export function parseJsonNotingFloats(text: string): unknown {
  return FLOAT_AFTER_DIGIT.test(text) ? JSON.parse(text, exactNotingFloats as (k: string, v: unknown) => unknown) : parseJsonExact(text);
}

/** Was `holder[key]`, from parseJsonNotingFloats, a whole number written as a float literal (`1.0`, `1e2`)? */
export function writtenAsFloat(holder: object, key: string): boolean {
  return wholeFloats.get(holder)?.has(key) === true;
}

/**
 * Does `s` hold 16 digits in a row? Any such run covers an index ≡ 15 (mod 16),
 * so only those are looked at until one is a digit: ~n/16 reads for text with
 * few digits (a lookup body), the run measured around a digit found.
 */
export function hasLongDigitRun(s: string): boolean {
  const n = s.length;
  for (let i = 15; i < n; i += 16) {
    if (!isDigit(s.charCodeAt(i))) continue;
    let a = i;
    while (a > 0 && isDigit(s.charCodeAt(a - 1))) a--;
    let b = i + 1;
    while (b < n && isDigit(s.charCodeAt(b))) b++;
    if (b - a >= 16) return true;
  }
  return false;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
