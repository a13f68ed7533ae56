import { Encoder } from "@msgpack/msgpack";
import type { FeatureValue } from "./kv-node.ts";

const TWO_32 = 4294967296;

/**
 * MessagePack that takes bigints (int64s past 2^53, src/kv/int64.ts) and
 * writes everything else exactly as @msgpack/msgpack always has. The library
 * refuses a bigint unless built with `useBigInt64`, and so built it writes a
 * safe integer past 32 bits as float64 instead of uint 64 / int 64: so a
 * value holding a bigint goes through a second encoder with its safe
 * integers past 32 bits widened to bigint first, which gives them the formats
 * the first writes (0xcf for ≥ 2^32, 0xd3 for < -2^31), and the big values
 * int 64 / uint 64 too. Detected by the first encoder's refusal: values
 * without a bigint pay nothing. Stored rows (row-codec.ts, the arena) and
 * answers built from values (api/http/responses.ts) both encode through it.
 */
export class RowValuesEncoder {
  private readonly plain = new Encoder({ ignoreUndefined: true });
  private readonly wide = new Encoder({ ignoreUndefined: true, useBigInt64: true });

  /** The values' bytes, in a buffer the next call reuses (as Encoder.encodeSharedRef). */
  encodeSharedRef(values: readonly FeatureValue[]): Uint8Array {
    try {
      return this.plain.encodeSharedRef(values);
    } catch (e) {
      if (!holdsBigInt(values)) throw e;
      return this.wide.encodeSharedRef(widened(values));
    }
  }

  /** Any value's bytes (objects too: an answer body), in a buffer of its own. */
  encode(value: unknown): Uint8Array {
    try {
      return this.plain.encode(value);
    } catch (e) {
      if (!holdsBigInt(value)) throw e;
      return this.wide.encode(widened(value));
    }
  }
}

function holdsBigInt(v: unknown): boolean {
  if (typeof v === "bigint") return true;
  if (Array.isArray(v)) return v.some(holdsBigInt);
  return v !== null && typeof v === "object" && !(v instanceof Uint8Array) && Object.values(v).some(holdsBigInt);
}

/** `v` with every safe integer the plain encoder writes as uint 64 / int 64 a bigint (which the wide one writes so too). */
function widened(v: unknown): unknown {
  if (typeof v === "number") return Number.isSafeInteger(v) && (v >= TWO_32 || v < -0x80000000) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(widened);
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = widened(x);
  return out;
}
