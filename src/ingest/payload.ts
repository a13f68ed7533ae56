import { Decoder } from "@msgpack/msgpack";
import { canonicalInt64 } from "../kv/int64.ts";
import { parseJsonExact } from "../text/exact-json.ts";
import { MappingError } from "./mapping.ts";

const text = new TextDecoder("utf-8", { fatal: true });

/** Decodes a payload into an object; throws MappingError("undecodable") otherwise. */
export type PayloadDecoder = (bytes: Uint8Array) => unknown;

export function payloadDecoder(format: "json" | "msgpack"): PayloadDecoder {
  // Integers past 2^53 exact, as bigints (src/kv/int64.ts): JSON through parseJsonExact, MessagePack's int 64 /
  // uint 64 decoded as bigints and made canonical (safe ones back to numbers, as before).
  const msgpack = new Decoder({ useBigInt64: true });
  const parse = format === "json" ? (b: Uint8Array) => parseJsonExact(text.decode(b)) : (b: Uint8Array) => canonicalInts(msgpack.decode(b));
  return (bytes) => {
    let value: unknown;
    try {
      value = parse(bytes);
    } catch (e) {
      throw new MappingError("undecodable", "", `not valid ${format}: ${(e as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new MappingError("undecodable", "", `expected a ${format} object`);
    return value;
  };
}

/** `v` with every bigint in canonical int64 form (a number when safe), in place. */
function canonicalInts(v: unknown): unknown {
  if (typeof v === "bigint") return canonicalInt64(v);
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v)) return v;
  if (v instanceof Map) {
    for (const [k, x] of v) if (typeof x === "bigint" || (x !== null && typeof x === "object")) v.set(k, canonicalInts(x));
    return v;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    const x = o[k];
    if (typeof x === "bigint" || (x !== null && typeof x === "object")) o[k] = canonicalInts(x);
  }
  return v;
}
