import { Encoder } from "@msgpack/msgpack";
import type { FeatureValue } from "./kv-node.ts";

const TWO_32 = 4294967296;

/**
 * Encodes a stored row's values as one MessagePack array. @msgpack/msgpack
 * writes every row that holds no bigint, exactly as before. It refuses a
 * bigint unless built with `useBigInt64`, and so built it writes a safe
 * integer past 32 bits as float64 instead of uint 64 / int 64: so a row with
 * a big int64 (src/kv/int64.ts) goes through a second encoder with its safe
 * integers past 32 bits widened to bigint first, which gives them the formats
 * the first writes (0xcf for ≥ 2^32, 0xd3 for < -2^31), and the big values
 * int 64 / uint 64 too. Detected by the first encoder's refusal: rows without
 * a bigint pay nothing.
 */
export class RowValuesEncoder {
  private readonly plain = new Encoder({ ignoreUndefined: true });
  private readonly wide = new Encoder({ ignoreUndefined: true, useBigInt64: true });

  /** The values' bytes, in a buffer the next call reuses (as Encoder.encodeSharedRef). */
  encodeSharedRef(values: readonly FeatureValue[]): Uint8Array {
    try {
      return this.plain.encodeSharedRef(values);
    } catch (e) {
      if (!values.some(holdsBigInt)) throw e;
      return this.wide.encodeSharedRef(values.map(widened));
    }
  }
}

function holdsBigInt(v: FeatureValue): boolean {
  return typeof v === "bigint" || (Array.isArray(v) && v.some((x: unknown) => typeof x === "bigint"));
}

function widened(v: FeatureValue): unknown {
  if (typeof v === "number") return widenNumber(v);
  return Array.isArray(v) ? v.map((x: unknown) => (typeof x === "number" ? widenNumber(x) : x)) : v;
}

/** A safe integer the plain encoder writes as uint 64 / int 64, as a bigint (which the wide one writes so too). */
function widenNumber(n: number): number | bigint {
  return Number.isSafeInteger(n) && (n >= TWO_32 || n < -0x80000000) ? BigInt(n) : n;
}
