import { clipText } from "../text/surrogates.ts";

/**
 * int64 values in memory. Feast's Int64 is a full 64-bit integer; a JS number
 * holds integers exactly only up to 2^53 − 1. An int64 is kept as a `number`
 * while it is a safe integer (every value the hot paths see in practice, so
 * they do not change) and as a `bigint` beyond that: the canonical form, so
 * one value always has one representation (a row decoded from storage, a
 * pushed value and a default compare alike). Stored rows carry a big one as
 * MessagePack int 64 / uint 64 (0xd3 / 0xcf), the formats safe values past
 * 32 bits already used.
 */

/** Digits quoted in a message: 40 and a mark, as quoted strings are. */
const QUOTED = 41;

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** An int64 as Quiver holds it: a safe integer, or a bigint outside the safe range. */
export type Int64 = number | bigint;

/** Decimal text of an integer: no leading zeros, no "+", as join keys spell them. */
export const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;

/** The canonical form of an integer known to be within int64 (a number when safe). */
export function canonicalInt64(b: bigint): Int64 {
  return b >= SAFE_MIN && b <= SAFE_MAX ? Number(b) : b;
}

export function inInt64Range(b: bigint): boolean {
  return b >= INT64_MIN && b <= INT64_MAX;
}

/**
 * `v` as an int64 in canonical form — from a safe integer, a bigint, or the
 * decimal text of one (`"-0"` is 0) — or undefined when it is none of those
 * or lies outside [-2^63, 2^63 − 1]. (`int64Problem` says which.)
 */
export function int64Of(v: unknown): Int64 | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === "bigint") return inInt64Range(v) ? canonicalInt64(v) : undefined;
  if (typeof v !== "string" || v.length > 20 || !INTEGER_TEXT.test(v)) return undefined;
  if (v.length < 16) return v === "-0" ? 0 : Number(v);
  const b = BigInt(v);
  return inInt64Range(b) ? canonicalInt64(b) : undefined;
}

/** An integer (a bigint, its decimal text, or an integral number) that int64 cannot hold; undefined when `v` is not an integer at all. */
export function outOfInt64Range(v: unknown): string | undefined {
  if (typeof v === "bigint") return inInt64Range(v) ? undefined : clipText(v.toString(), QUOTED);
  if (typeof v === "string" && INTEGER_TEXT.test(v)) {
    // Past 20 characters (a sign and 19 digits) it is out of range: no BigInt of a huge text (seconds for 4 MiB of digits).
    const out = v.length > 20 || !inInt64Range(BigInt(v));
    return out ? `"${clipText(v, QUOTED)}"` : undefined;
  }
  if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v)) {
    // A number past 2^53 that did not come from an exact parse (an exponent literal like 1e19, or a rounded one).
    return inInt64Range(BigInt(v)) ? undefined : String(v);
  }
  return undefined;
}

/** The 64-bit two's complement halves of an int64 (what a protobuf varint and MessagePack int 64 carry). */
export function int64Halves(v: bigint): { lo: number; hi: number } {
  const u = BigInt.asUintN(64, v);
  return { lo: Number(u & 0xffffffffn), hi: Number(u >> 32n) };
}

/** The uint 64 at `p`: a number when safe (high word below 2^21), else a bigint. */
export function uint64At(v: DataView, p: number): number | bigint {
  const hi = v.getUint32(p);
  return hi < 0x200000 ? hi * 4294967296 + v.getUint32(p + 4) : v.getBigUint64(p);
}

/** The int 64 at `p`: a number when safe, else a bigint (-2^53 is one: it is not a safe integer). */
export function int64At(v: DataView, p: number): number | bigint {
  const hi = v.getInt32(p);
  const lo = v.getUint32(p + 4);
  return hi < 0x200000 && (hi > -0x200000 || (hi === -0x200000 && lo !== 0)) ? hi * 4294967296 + lo : v.getBigInt64(p);
}
