import { describe, expect, test } from "bun:test";
import { decode, Encoder } from "@msgpack/msgpack";
import { ByteWriter } from "../api/http/byte-writer.ts";
import { storedJson } from "../api/http/stored-json.ts";
import { parseJsonExact } from "../text/exact-json.ts";
import { canonicalInt64, int64Of, outOfInt64Range } from "./int64.ts";
import type { FeatureValue } from "./kv-node.ts";
import { decodeRow, encodeRow, ROW_HEADER_BYTES } from "./row-codec.ts";
import { storedInt64Or0 } from "./stored-value.ts";

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const ABOVE_SAFE = 2n ** 53n + 1n;
/** The values the brief names, plus the edges of the safe range on both sides. */
const EDGES: readonly (number | bigint)[] = [MIN, MAX, ABOVE_SAFE, -ABOVE_SAFE, 2n ** 53n, -(2n ** 53n), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 31) - 1, 1001, -7, 0];

describe("int64 in canonical form", () => {
  test("numbers while safe, bigints past 2^53, from numbers, bigints and decimal text", () => {
    expect(int64Of(1001)).toBe(1001);
    expect(int64Of(9007199254740993n)).toBe(9007199254740993n);
    expect(int64Of(9007199254740991n)).toBe(9007199254740991);
    expect(int64Of("9223372036854775807")).toBe(MAX);
    expect(int64Of("-9223372036854775808")).toBe(MIN);
    expect(int64Of("-9007199254740992")).toBe(-(2n ** 53n));
    expect(int64Of("-0")).toBe(0);
    expect(int64Of("42")).toBe(42);
    for (const bad of ["9223372036854775808", "-9223372036854775809", "01", "1.0", "", " 1", 1.5, 2 ** 53, Number.NaN, true, null, [1]]) expect(int64Of(bad)).toBeUndefined();
    expect(int64Of(MAX + 1n)).toBeUndefined();
    expect(canonicalInt64(5n)).toBe(5);
  });

  test("out of range is told apart from not an integer, with the digits as sent", () => {
    expect(outOfInt64Range(MAX + 1n)).toBe("9223372036854775808");
    expect(outOfInt64Range("-9223372036854775809")).toBe('"-9223372036854775809"');
    expect(outOfInt64Range(1e30)).toBe("1e+30");
    expect(outOfInt64Range("abc")).toBeUndefined();
    expect(outOfInt64Range(1.5)).toBeUndefined();
    expect(outOfInt64Range(MAX)).toBeUndefined();
  });
});

describe("stored rows with int64s past 2^53", () => {
  test("round-trip exactly through encodeRow/decodeRow, scalars and lists, in canonical form", () => {
    for (const v of EDGES) {
      const canonical = typeof v === "bigint" ? canonicalInt64(v) : v;
      const row = { ts: 1234, values: [canonical, [...EDGES.map((x) => (typeof x === "bigint" ? canonicalInt64(x) : x))], "text", 0.25, null] as FeatureValue[] };
      const back = decodeRow(encodeRow(row));
      expect(back.values).toEqual(row.values);
      expect(typeof back.values[0]).toBe(typeof canonical);
    }
  });

  test("big ones are written as int 64 / uint 64 (0xd3 / 0xcf); safe ones keep the bytes they had", () => {
    const body = (values: FeatureValue[]) => encodeRow({ ts: 0, values }).subarray(ROW_HEADER_BYTES);
    expect([...body([MAX])]).toEqual([0x91, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect([...body([MIN])]).toEqual([0x91, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    expect([...body([ABOVE_SAFE])]).toEqual([0x91, 0xcf, 0, 0x20, 0, 0, 0, 0, 0, 1]);
    // The same safe values next to a bigint are written as @msgpack/msgpack writes them alone.
    const safe: FeatureValue[] = [2 ** 40, -(2 ** 40), 2 ** 32, -(2 ** 31) - 1, 1e20, 0.5, "x", [2 ** 40, 1]];
    const plain = new Encoder({ ignoreUndefined: true }).encode(safe);
    const mixed = body([...safe, ABOVE_SAFE]);
    expect([...mixed.subarray(1, plain.length)]).toEqual([...plain.subarray(1)]);
    // And the library's own decoder (what a Redis-side tool would use) reads the big ones exactly too.
    expect(decode(body([MAX, [MIN, 1]]), { useBigInt64: true })).toEqual([MAX, [MIN, 1]]);
  });

  test("a row the fast decoder leaves to the library (a string with 0xED bytes) still gives canonical int64s", () => {
    const back = decodeRow(encodeRow({ ts: 0, values: ["한국어", MAX, 2 ** 40, [ABOVE_SAFE, 5]] }));
    expect(back.values).toEqual(["한국어", MAX, 2 ** 40, [ABOVE_SAFE, 5]]);
  });

  test("answer writers read the stored bytes exactly: JSON integer literals, typed int64 reads", () => {
    const values: FeatureValue[] = [MIN, MAX, ABOVE_SAFE, 1001, [MIN, MAX, ABOVE_SAFE, 1001], 2 ** 60, 1e20, 0.1];
    const bytes = encodeRow({ ts: 0, values });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const w = new ByteWriter(256);
    // Value by value, as the answer writers call it (a row's array header is 0x98: eight values).
    expect(bytes[ROW_HEADER_BYTES]).toBe(0x98);
    w.byte(0x5b);
    for (let i = 0, p = ROW_HEADER_BYTES + 1; i < values.length; i++) {
      if (i > 0) w.byte(0x2c);
      p = storedJson(w, bytes, view, p, bytes.length);
      expect(p).toBeGreaterThan(0);
    }
    w.byte(0x5d);
    const text = new TextDecoder().decode(w.written());
    expect(text).toBe("[-9223372036854775808,9223372036854775807,9007199254740993,1001,[-9223372036854775808,9223372036854775807,9007199254740993,1001],1152921504606847000,100000000000000000000,0.1]");
    // Floats (2^60 and 1e20 are float64s here: not safe integers) as JSON.stringify writes them, as before.
    expect((parseJsonExact(text) as unknown[]).slice(0, 5)).toEqual(values.slice(0, 5));
    // 1 + 9 bytes in: the first value is 0xd3 at the array's second byte.
    expect(storedInt64Or0(bytes, view, ROW_HEADER_BYTES + 1)).toBe(MIN);
    expect(storedInt64Or0(bytes, view, ROW_HEADER_BYTES + 10)).toBe(MAX);
  });
});

describe("parseJsonExact", () => {
  test("integer literals past 2^53 arrive exact; everything else as JSON.parse gives it", () => {
    expect(parseJsonExact('{"a":[9007199254740993,-9223372036854775808,9223372036854775807,1.5,1e30,12345678901234567.5,1001]}')).toEqual({
      a: [9007199254740993n, MIN, MAX, 1.5, 1e30, 12345678901234568, 1001],
    });
    // Out of int64 still exact (the type check names its digits).
    expect(parseJsonExact("[99999999999999999999999]")).toEqual([99999999999999999999999n]);
    // A long run of digits inside a string stays a string; a safe 16-digit number stays a number.
    expect(parseJsonExact('["12345678901234567", 1234567890123456]')).toEqual(["12345678901234567", 1234567890123456]);
    expect(() => parseJsonExact("{1234567890123456789")).toThrow();
  });
});

describe("a body or value holding a huge run of digits costs no BigInt of it", () => {
  test("the exact parse keeps literals past a sign and 20 digits as JSON.parse gives them; out-of-range text is named, clipped", () => {
    const digits = "7".repeat(200_000);
    // A bigint of 200,000 digits took most of a second (4 MiB: seconds of the serving thread) and was quoted whole.
    const parsed = parseJsonExact(`{"n":${digits},"m":-18446744073709551615,"k":123456789012345678901}`) as Record<string, unknown>;
    expect(typeof parsed.n).toBe("number");
    expect(parsed.m).toBe(-18446744073709551615n);
    expect(parsed.k).toBe(123456789012345678901n);
    const named = outOfInt64Range(digits);
    expect(named).toBe(`"${"7".repeat(40)}…"`);
    expect(int64Of(digits)).toBeUndefined();
    expect(outOfInt64Range(-(2n ** 200n))!.length).toBeLessThanOrEqual(41);
  });
});
