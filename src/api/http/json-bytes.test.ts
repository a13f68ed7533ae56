import { describe, expect, test } from "bun:test";
import { ByteWriter } from "./byte-writer.ts";
import { jsonNumber } from "./json-bytes.ts";

/** jsonNumber must write exactly what JSON.stringify writes, for every number. */
describe("jsonNumber", () => {
  const w = new ByteWriter(16);
  const dec = new TextDecoder();
  const spell = (v: number) => {
    w.reset();
    jsonNumber(w, v);
    return dec.decode(w.written());
  };
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };

  test("edge values", () => {
    const values = [
      0, -0, 1, -1, 9, 10, 99_999_999, 100_000_000, 100_000_001, 1_763_900_000_123, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 1e-7,
      0.1, 0.2, 0.1 + 0.2, 1.005, 9.995, 2.675, 4.35, 0.07, 1e-6, 1.5e-6, 9.999999e-7, 1e15 - 0.5, 999_999_999_999_999.9, 123_456_789.12345, 0.000001234,
      // Around 2^31 digits (ByteWriter.fixedPoint's int32 loop and its double fallback).
      214_748.3647, 214_748.3648, 214_748.3649, 2_147_483.647, 0.2147483647, 0.2147483648, 21_474_836.49, 4_294_967.295, 4_294_967.296,
      // Four fraction digits or fewer, each count of trailing zeros at f = 4, and just beyond (the search from f = 5).
      0.1, 0.12, 0.123, 0.1234, 0.12345, -0.1, -0.1234, 0.0001, 0.001, 0.01, 0.00015, 12_345.6789, 12_345.67891, 214_748.3, 214_748.36,
      5e-324, Number.MAX_VALUE, -0.5, 2.5, 100.25, 9 - 2 ** -50, 0.30000000000000004, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
    ];
    for (const v of values) expect(spell(v)).toBe(JSON.stringify(v));
  });

  test("300,000 random values of every magnitude and precision", () => {
    const mismatches: string[] = [];
    const check = (v: number) => {
      const got = spell(v);
      if (got !== JSON.stringify(v)) mismatches.push(`${JSON.stringify(v)} written as ${got}`);
    };
    for (let i = 0; i < 100_000; i++) {
      const digits = Math.floor(rnd() * 12);
      const magnitude = 10 ** Math.floor(rnd() * 24 - 10);
      check(((Math.round(rnd() * magnitude * 10 ** digits) / 10 ** digits) * (rnd() < 0.3 ? -1 : 1)));
      check((rnd() - 0.5) * magnitude);
      check(Number((rnd() * 1000).toFixed(Math.floor(rnd() * 8))));
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
  });
});
