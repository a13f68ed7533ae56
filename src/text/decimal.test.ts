import { expect, test } from "bun:test";
import { digitCount, writeDigits } from "./decimal.ts";

test("digit counts and digits match String() at every power-of-ten boundary and for 2^53 - 1; short values are zero-padded", () => {
  const values = [0, 1, 9, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER];
  for (let k = 1; k <= 15; k++) values.push(10 ** k - 1, 10 ** k, 10 ** k + 1);
  const out = new Uint8Array(32);
  const text = (from: number, to: number) => new TextDecoder().decode(out.subarray(from, to));
  for (const v of values) {
    const n = digitCount(v);
    expect(n).toBe(String(v).length);
    writeDigits(out, n, v, n);
    expect(text(0, n)).toBe(String(v));
  }
  writeDigits(out, 6, 42, 6);
  expect(text(0, 6)).toBe("000042");
  // The last digits only when the count is short: a fraction's digits below its integer part.
  writeDigits(out, 4, 123_456_789_012, 4);
  expect(text(0, 4)).toBe("9012");
});
