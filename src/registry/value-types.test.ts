import { describe, expect, test } from "bun:test";
import { checkerFor, MAX_EMBEDDING_NORM, parseValueType } from "./value-types.ts";

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
});
