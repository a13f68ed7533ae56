import { describe, expect, test } from "bun:test";
import { decode, encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { MsgpackReader, TooManyContainers } from "./msgpack-reader.ts";

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

  test("every wire form other clients send decodes as @msgpack/msgpack decodes it: float32, 16/32-bit lengths, 64-bit integers", () => {
    const wide = new MsgpackReader({ maxStrLength: 100_000, maxArrayLength: 100_000, maxMapLength: 100_000, maxDepth: 8 });
    const cases: number[][] = [
      [0xca, 0x3f, 0xc0, 0x00, 0x00], // float32 1.5 (Python's use_single_float, Go's float32)
      [0xca, 0xff, 0x80, 0x00, 0x00], // float32 -Infinity
      [0xcf, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // uint64 2^53 - 1
      [0xd3, 0xff, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01], // int64 -(2^53 - 1)
      [0xd0, 0x80], // int8 -128
      [0xd1, 0x80, 0x00], // int16 -32768
      [0xd2, 0x80, 0x00, 0x00, 0x00], // int32 -2^31
      [0xcd, 0xff, 0xff], // uint16
      [0xce, 0xff, 0xff, 0xff, 0xff], // uint32
    ];
    for (const c of cases) expect(wide.decode(new Uint8Array(c))).toEqual(decode(new Uint8Array(c)) as never);
    // Outside the safe range a bigint, exact (src/kv/int64.ts), where @msgpack/msgpack gives a rounded number.
    expect(wide.decode(new Uint8Array([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBe(18446744073709551615n);
    expect(wide.decode(new Uint8Array([0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0x01]))).toBe(9007199254740993n);
    expect(wide.decode(new Uint8Array([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]))).toBe(-9223372036854775808n);
    expect(wide.decode(new Uint8Array([0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0]))).toBe(-9007199254740992n);
    expect(wide.decode(new Uint8Array([0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBe(9223372036854775807n);
    // Lengths past the one-byte forms: str16/str32, bin16/bin32, array16/array32, map16/map32, built by hand.
    const be16 = (n: number) => [n >> 8, n & 0xff];
    const be32 = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
    const text = [..."x".repeat(300)].map((ch) => ch.charCodeAt(0));
    const blob = Array.from({ length: 300 }, (_, i) => i & 0xff);
    const ints = Array.from({ length: 20 }, (_, i) => i);
    const pairs = ints.flatMap((i) => [0xa3, 0x6b, 0x30 + Math.floor(i / 10), 0x30 + (i % 10), i]);
    const long: number[][] = [
      [0xda, ...be16(300), ...text],
      [0xdb, ...be32(300), ...text],
      [0xc5, ...be16(300), ...blob],
      [0xc6, ...be32(300), ...blob],
      [0xdc, ...be16(20), ...ints],
      [0xdd, ...be32(20), ...ints],
      [0xde, ...be16(20), ...pairs],
      [0xdf, ...be32(20), ...pairs],
    ];
    for (const c of long) expect(wide.decode(new Uint8Array(c))).toEqual(decode(new Uint8Array(c)) as never);
    // Cut short inside a multi-byte value: an error, never a read past the end.
    expect(() => wide.decode(new Uint8Array([0xcb, 0x3f, 0xf8]))).toThrow();
    expect(() => wide.decode(new Uint8Array([0xda, 0x01]))).toThrow();
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
    // A key twice (fixmap of 2: "a" → 1, "a" → 2), or 1 and "1" (one property): refused, not the last kept.
    expect(() => reader.decode(new Uint8Array([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02]))).toThrow(/"a" appears twice/);
    expect(() => reader.decode(new Uint8Array([0x82, 0x01, 0x01, 0xa1, 0x31, 0x02]))).toThrow(/"1" appears twice/);
    // A multi-container budget: a decode opening more maps and arrays than it allows stops at the first one over.
    expect(() => reader.decode(encode([[], [], {}]), 4)).not.toThrow();
    expect(() => reader.decode(encode([[], [], {}]), 3)).toThrow(TooManyContainers);
    expect(() => reader.decode(new Uint8Array([0xa2, 0xc3, 0x28]))).toThrow();
  });

  test("a __proto__ key is an own field, never the object's prototype", () => {
    const v = reader.decode(encode(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
