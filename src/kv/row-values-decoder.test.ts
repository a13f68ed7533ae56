import { describe, expect, test } from "bun:test";
import { decode, Encoder } from "@msgpack/msgpack";
import { RowValuesDecoder } from "./row-values-decoder.ts";

const encoder = new Encoder({ ignoreUndefined: true });

/** Decodes `values` through the fast path, placed at an offset inside a larger buffer like a slab record. */
function viaFastPath(values: unknown): unknown {
  const body = encoder.encode(values);
  const slab = Buffer.alloc(body.length + 37, 0xee);
  slab.set(body, 17);
  return new RowValuesDecoder().decode(slab, new DataView(slab.buffer, slab.byteOffset, slab.length), 17, 17 + body.length);
}

describe("RowValuesDecoder", () => {
  const cases: Record<string, unknown[]> = {
    "every FeatureValue shape": [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1],
    "floats and specials": [0.5, -1.25, 1e300, Number.MIN_VALUE, Number.NaN, Number.POSITIVE_INFINITY, -0],
    "strings of every header width": ["", "a", "x".repeat(31), "x".repeat(32), "y".repeat(255), "z".repeat(256), "w".repeat(70_000)],
    "non-ASCII strings": ["héllo", "東京都", "🚀 rocket", "é".repeat(300)],
    "strings the library round-trips only through its own decoder": ["\ud800", "a\udc00b", "한국어"],
    "nested arrays": [[1, 2, 3], [0.5, -1.5], ["a", "b"], [true, false, null], [], Array.from({ length: 20 }, (_, i) => i * 1.5)],
    "a wide row": Array.from({ length: 70_000 }, (_, i) => i),
    "shapes outside FeatureValue fall back": [{ a: 1 }, [[1, [2, [3]]]], new Uint8Array([1, 2, 3])],
  };
  for (const [name, values] of Object.entries(cases)) {
    test(`decodes ${name} exactly like @msgpack/msgpack`, () => {
      const got = viaFastPath(values);
      expect(got).toEqual(decode(encoder.encode(values)));
    });
  }
});
