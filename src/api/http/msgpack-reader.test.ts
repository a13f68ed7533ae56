import { describe, expect, test } from "bun:test";
import { decode, encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { MsgpackReader } from "./msgpack-reader.ts";

const reader = new MsgpackReader({ maxStrLength: 1000, maxArrayLength: 1000, maxMapLength: 100, maxDepth: 8 });

describe("MsgpackReader", () => {
  test("decodes what @msgpack/msgpack decodes, for every value a request can hold (property)", () => {
    const leaf = fc.oneof(
      fc.double(),
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
      fc.string({ unit: "grapheme", maxLength: 60 }),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 20 }),
    );
    const tree = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("node"), { maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 10 }), tie("node"), { maxKeys: 5 })),
    })).node;
    fc.assert(
      fc.property(tree, (v) => {
        const bytes = encode(v);
        expect(reader.decode(bytes)).toEqual(decode(bytes) as never);
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  test("short strings seen again come back equal, through slot collisions and turnover; bad UTF-8 is refused every time", () => {
    const interning = new MsgpackReader({ maxStrLength: 1000, maxArrayLength: 5000, maxMapLength: 100, maxDepth: 8 });
    // Far more distinct short strings than the table has slots, most of them sharing slots, each read twice.
    const words = Array.from({ length: 5000 }, (_, i) => `k${i.toString(36)}${"é".repeat(i % 3)}`);
    for (let round = 0; round < 2; round++) {
      expect(interning.decode(encode(words))).toEqual(words);
      expect(interning.decode(encode(words.slice().reverse()))).toEqual(words.slice().reverse());
    }
    // Same length, other bytes (a different string in the slot a compare must reject).
    expect(interning.decode(encode(["ab", "ba", "ab", "aa"]))).toEqual(["ab", "ba", "ab", "aa"]);
    const bad = new Uint8Array([0xa2, 0xc3, 0x28]);
    for (let i = 0; i < 2; i++) expect(() => interning.decode(bad)).toThrow();
    expect(interning.decode(encode("x".repeat(64)))).toBe("x".repeat(64));
    expect(interning.decode(encode("y".repeat(65)))).toBe("y".repeat(65));
  });

  test("refuses truncated data, extra bytes, ext types, oversized and over-deep values with a message", () => {
    const lookup = encode({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] });
    for (let cut = 0; cut < lookup.length; cut++) expect(() => reader.decode(lookup.subarray(0, cut))).toThrow(/end of data|cannot fit/);
    expect(() => reader.decode(new Uint8Array([...lookup, 0xc0]))).toThrow(/extra bytes/);
    expect(() => reader.decode(new Uint8Array([0xd6, 0xff, 0, 0, 0, 0]))).toThrow(/extension types/);
    expect(() => reader.decode(new Uint8Array([0xc1]))).toThrow(/never used/);
    expect(() => reader.decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]))).toThrow(/exceeds the limit/);
    expect(() => reader.decode(new Uint8Array([0xdc, 0x01, 0x00]))).toThrow(/cannot fit/);
    expect(() => reader.decode(encode([[[[[[[[[[1]]]]]]]]]]))).toThrow(/nesting/);
    expect(() => reader.decode(encode("x".repeat(1001)))).toThrow(/exceeds the limit/);
    expect(() => reader.decode(new Uint8Array([0x81, 0x90, 0x01]))).toThrow(/map keys/);
    expect(() => reader.decode(new Uint8Array([0xa2, 0xc3, 0x28]))).toThrow();
  });

  test("a __proto__ key is an own field, never the object's prototype", () => {
    const v = reader.decode(encode(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
