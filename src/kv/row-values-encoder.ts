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
 *
 * One departure from the library: -0 is written as float 64 -0, not as the
 * integer 0 (so a float64 feature's -0.0 reads back as -0.0; int64 values
 * never hold -0: registry/value-types.ts canonicalFor, ingest/coerce.ts).
 * Other whole numbers stay integers, as rows stored before are: answers
 * write a float feature's integer bytes as a float (api/http/stored-msgpack.ts).
 */
export class RowValuesEncoder {
  private readonly plain = keepingNegativeZero(new Encoder({ ignoreUndefined: true }));
  private readonly wide = keepingNegativeZero(new Encoder({ ignoreUndefined: true, useBigInt64: true }));

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

/** The library's private number writers, which keepingNegativeZero wraps. */
interface NumberWriters {
  encodeNumber(n: number): void;
  encodeNumberAsFloat(n: number): void;
}

/**
 * `encoder`, writing -0 as float 64 (0xcb 80 00 ..) instead of the fixint 0.
 * @msgpack/msgpack has no option for it (`forceIntegerToFloat` would turn
 * every integer, int64 features' too, into a float), so its number writer is
 * wrapped on this one instance; a library whose internals moved fails here,
 * at start-up, not silently (row-values-encoder.test.ts pins the bytes).
 */
function keepingNegativeZero(encoder: Encoder): Encoder {
  const e = encoder as unknown as NumberWriters;
  const plain = e.encodeNumber;
  if (typeof plain !== "function" || typeof e.encodeNumberAsFloat !== "function") {
    throw new Error("@msgpack/msgpack's Encoder no longer has encodeNumber / encodeNumberAsFloat: row-values-encoder.ts cannot keep -0 as float 64");
  }
  e.encodeNumber = function encodeNumber(this: NumberWriters, n: number): void {
    if (n === 0 && 1 / n < 0) this.encodeNumberAsFloat(n);
    else plain.call(this, n);
  };
  return encoder;
}
