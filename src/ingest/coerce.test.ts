import { describe, expect, test } from "bun:test";
import type { JoinKey } from "../registry/index.ts";
import { CoercionError, coercerFor, keyCoercerFor } from "./coerce.ts";

/**
 * Streaming writers coerce each mapped payload field to its feature's type
 * (compile-sources.ts): what upstream schemas commonly send is accepted, the
 * rest is a CoercionError naming what was expected and what came (the event
 * goes to dead letters, nothing is stored).
 */

const joinKey = (type: "int64" | "string"): JoinKey => ({ name: "id", type, partHead: new Uint8Array() });

function fails(f: () => unknown, message: string): void {
  expect(f).toThrow(CoercionError);
  expect(f).toThrow(message);
}

describe("coercerFor", () => {
  test("int64: numbers, bigints and decimal strings over int64's whole range, exact; scaled values rounded", () => {
    const int = coercerFor({ kind: "int64" });
    expect(int(42)).toBe(42);
    expect(int("-17")).toBe(-17);
    expect(int("9007199254740991")).toBe(9007199254740991);
    // Past 2^53 exact, as a bigint (src/kv/int64.ts); to int64's ends; past them refused with the digits as sent.
    expect(int("9007199254740993")).toBe(9007199254740993n);
    expect(int(9007199254740993n)).toBe(9007199254740993n);
    expect(int("-9223372036854775808")).toBe(-9223372036854775808n);
    expect(int("9223372036854775807")).toBe(9223372036854775807n);
    expect(int(9007199254740991n)).toBe(9007199254740991);
    expect(int("0000000000000000042")).toBe(42);
    fails(() => int("9223372036854775808"), `expected an integer in int64's range [-2^63, 2^63 − 1], got "9223372036854775808"`);
    fails(() => int(-9223372036854775809n), `expected an integer in int64's range [-2^63, 2^63 − 1], got integer -9223372036854775809`);
    fails(() => int(2 ** 60), "expected an integer, got integer 1152921504606847000");
    fails(() => int(1.5), "expected an integer");
    fails(() => int("1.5"), "expected an integer");
    fails(() => int("12abc"), "expected an integer");
    fails(() => int(null), "expected an integer, got null");
    // cents from a decimal amount: scale applies to text too, then rounds
    const cents = coercerFor({ kind: "int64" }, 100);
    expect(cents("12.345")).toBe(1235);
    expect(cents(0.1)).toBe(10);
    // -0 (a payload's -0.0, or a small negative amount rounded) is 0: stored rows keep a -0 as float64 -0, never for an int.
    expect(Object.is(int(-0), 0)).toBe(true);
    expect(Object.is(cents(-0.001), 0)).toBe(true);
  });

  test("float64: numbers and numeric text, finite only, scaled", () => {
    const f = coercerFor({ kind: "float64" });
    expect(f(0.25)).toBe(0.25);
    expect(f("1e-3")).toBe(0.001);
    expect(f(".5")).toBe(0.5);
    fails(() => f("1e400"), 'expected a finite number, got string "1e400"');
    fails(() => f("NaN"), "expected a number");
    fails(() => f(true), "expected a number, got boolean");
    expect(coercerFor({ kind: "float64" }, 0.001)("2500")).toBeCloseTo(2.5, 12);
  });

  test("bool: true/false, 1/0 as numbers or text; anything else refused", () => {
    const b = coercerFor({ kind: "bool" });
    expect([b(true), b(1), b("1"), b("true")]).toEqual([true, true, true, true]);
    expect([b(false), b(0), b("0"), b("false")]).toEqual([false, false, false, false]);
    fails(() => b("yes"), 'expected a bool (true/false, 1/0), got string "yes"');
    fails(() => b(2), "expected a bool");
  });

  test("string: text as is, numbers and booleans spelled out, objects refused", () => {
    const s = coercerFor({ kind: "string" });
    expect(s("Porto")).toBe("Porto");
    expect(s(12)).toBe("12");
    expect(s(false)).toBe("false");
    // A payload integer past 2^53 arrives as a bigint (read exactly): its digits, not a dead letter.
    expect(s(1234567890123456789n)).toBe("1234567890123456789");
    expect(coercerFor({ kind: "string[]" })([18446744073709551615n, 2])).toEqual(["18446744073709551615", "2"]);
    fails(() => s({ city: "Porto" }), "expected a string, got an object");
    // int64 text far past the range is refused without a BigInt of it; zero padding is not length.
    fails(() => coercerFor({ kind: "int64" })("9".repeat(100_000)), `got "${"9".repeat(40)}…"`);
    expect(coercerFor({ kind: "int64" })(`${"0".repeat(100_000)}42`)).toBe(42);
    expect(coercerFor({ kind: "int64" })(`-${"0".repeat(30)}9223372036854775808`)).toBe(-(2n ** 63n));
  });

  test("lists: every element coerced as its type; a non-list or a bad element refuses the field", () => {
    expect(coercerFor({ kind: "int64[]" })([1, "2", 3])).toEqual([1, 2, 3]);
    expect(coercerFor({ kind: "float64[]" }, 10)([0.5, "1.5"])).toEqual([5, 15]);
    expect(coercerFor({ kind: "string[]" })(["a", 1, true])).toEqual(["a", "1", "true"]);
    expect(coercerFor({ kind: "string[]" })([])).toEqual([]);
    fails(() => coercerFor({ kind: "int64[]" })("1,2,3"), 'expected a list of integers, got string "1,2,3"');
    fails(() => coercerFor({ kind: "int64[]" })([1, 2.5]), "expected an integer, got number 2.5");
    fails(() => coercerFor({ kind: "string[]" })([["nested"]]), "expected a string");
  });

  test("embedding(dim): a list of exactly dim finite numbers", () => {
    const e = coercerFor({ kind: "embedding", dim: 3 });
    expect(e([0.1, "0.2", 3])).toEqual([0.1, 0.2, 3]);
    fails(() => e([0.1, 0.2]), "expected embedding(3), got 2 dimensions");
    fails(() => e([0.1, 0.2, 0.3, 0.4]), "expected embedding(3), got 4 dimensions");
    fails(() => e([0.1, "x", 0.3]), 'expected a number, got string "x"');
    fails(() => e("0.1,0.2,0.3"), "expected embedding(3)");
  });
});

describe("keyCoercerFor", () => {
  test("int64 keys pass numbers and text through (the push path checks them as ids); other kinds refused", () => {
    const k = keyCoercerFor(joinKey("int64"));
    expect(k(1001)).toBe(1001);
    expect(k("1001")).toBe("1001");
    fails(() => k(true), "expected an int64 id, got boolean");
    fails(() => k(undefined), "expected an int64 id");
  });

  test("string keys: text, booleans, exact numbers and bigints; an integer past 2^53 has lost digits and is refused", () => {
    const k = keyCoercerFor(joinKey("string"));
    expect(k("c17")).toBe("c17");
    expect(k(42)).toBe("42");
    expect(k(12345678901234567890n as unknown)).toBe("12345678901234567890");
    fails(() => k(Number("12345678901234567890")), "an integer beyond 2^53 has lost digits as a number; send it as a string");
    fails(() => k(null), "expected a string, got null");
  });
});
