import { describe, expect, test } from "bun:test";
import { canonicalFor, checkerFor, holdsFloats, MAX_EMBEDDING_NORM, parseValueType } from "./value-types.ts";

const check = (type: string, v: unknown) => checkerFor(parseValueType(type)!)(v);

describe("value checks", () => {
  test("embeddings: finite numbers of the declared dimension, no longer than a 32-bit float index can measure", () => {
    expect(check("embedding(3)", [0.1, -0.2, 0.3])).toBeUndefined();
    expect(check("embedding(3)", null)).toBeUndefined();
    expect(check("embedding(3)", [1, 2])).toContain("got 2 dimensions");
    expect(check("embedding(3)", [1, Number.NaN, 2])).toContain("element 1");
    // Finite doubles that overflow the index's floats: refused, not stored to poison every query.
    expect(check("embedding(3)", [1e200, 1, 1])).toContain("length (L2 norm)");
    expect(check("embedding(3)", [MAX_EMBEDDING_NORM, MAX_EMBEDDING_NORM, 0])).toContain("length (L2 norm)");
    expect(check("embedding(3)", [MAX_EMBEDDING_NORM / 2, MAX_EMBEDDING_NORM / 2, 0])).toBeUndefined();
  });

  test("strings: a lone surrogate (no UTF-8 form) is refused with its index; pairs are fine", () => {
    expect(check("string", "a\u{1F600}b")).toBeUndefined();
    expect(check("string", "ab\ud800")).toContain("lone surrogate (\\ud800) at index 2");
    expect(check("string", "\udc00x")).toContain("at index 0");
    expect(check("string[]", ["ok", "x\ud83dy"])).toContain("element 1: the string has a lone surrogate (\\ud83d) at index 1");
    expect(check("string[]", ["ok", "\u{1F600}"])).toBeUndefined();
    expect(check("string", 5)).toContain("expected string");
  });

  test("int64: integers over [-2^63, 2^63 − 1] as numbers, bigints or decimal strings; out of range names the digits as sent", () => {
    for (const ok of [1001, -7, 0, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, "9223372036854775807", "-9223372036854775808", "42", null]) expect(check("int64", ok)).toBeUndefined();
    expect(check("int64", 2n ** 63n)).toBe("expected int64, out of int64's range [-2^63, 2^63 − 1]: 9223372036854775808");
    expect(check("int64", "-9223372036854775809")).toBe('expected int64, out of int64\'s range [-2^63, 2^63 − 1]: "-9223372036854775809"');
    expect(check("int64", 1.5)).toBe("expected int64 (integers in [-2^63, 2^63 − 1], as numbers or decimal strings), got number 1.5");
    expect(check("int64", "12abc")).toContain('got string "12abc"');
    expect(check("int64", 2 ** 53)).toContain("got integer 9007199254740992");
    expect(check("int64[]", [1, 2n ** 63n - 1n, "-9223372036854775808"])).toBeUndefined();
    expect(check("int64[]", [1, 2n ** 64n])).toBe("expected int64[], element 1 is out of int64's range [-2^63, 2^63 − 1]: 18446744073709551616");
    expect(check("int64[]", [1, true])).toContain("element 1 is boolean true");
  });

  test("canonical: int64s as numbers while safe, bigints past 2^53; float64s given as bigints as their numbers", () => {
    const int = canonicalFor(parseValueType("int64")!);
    expect(int("9223372036854775807")).toBe(2n ** 63n - 1n);
    expect(int("42")).toBe(42);
    expect(int(5n)).toBe(5);
    expect(int(9007199254740993n)).toBe(9007199254740993n);
    expect(int(null)).toBeNull();
    const ints = canonicalFor(parseValueType("int64[]")!);
    const plain = [1, 2];
    expect(ints(plain)).toBe(plain);
    expect(ints(["9007199254740993", 3n, 4])).toEqual([9007199254740993n, 3, 4]);
    expect(canonicalFor(parseValueType("float64")!)(9007199254740993n)).toBe(9007199254740992);
    expect(check("float64", 9007199254740993n)).toBeUndefined();
    expect(canonicalFor(parseValueType("embedding(2)")!)([1n, 0.5])).toEqual([1, 0.5]);
    expect(check("embedding(2)", [9007199254740993n, 1])).toBeUndefined();
    expect(check("embedding(2)", [12345678901234567890n, 1])).toContain("length (L2 norm)");
  });

  test("canonical: an int64 -0 is 0 (stored rows keep a -0 as float64 -0: an int feature must not hold one); a float64 -0 stays -0", () => {
    expect(Object.is(canonicalFor(parseValueType("int64")!)(-0), 0)).toBe(true);
    const ints = canonicalFor(parseValueType("int64[]")!)([-0, 1, 9007199254740993n]) as unknown[];
    expect(Object.is(ints[0], 0)).toBe(true);
    expect(ints.slice(1)).toEqual([1, 9007199254740993n]);
    expect(Object.is(canonicalFor(parseValueType("float64")!)(-0), -0)).toBe(true);
    expect(Object.is((canonicalFor(parseValueType("float64[]")!)([-0]) as number[])[0], -0)).toBe(true);
  });

  test("holdsFloats: float64, float64[] and embeddings; no other type", () => {
    const floats = ["float64", "float64[]", "embedding(4)"];
    for (const t of ["int64", "float64", "string", "bool", "int64[]", "float64[]", "string[]", "embedding(4)"]) expect({ t, floats: holdsFloats(parseValueType(t)!) }).toEqual({ t, floats: floats.includes(t) });
  });
});
