import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { KeyBatch } from "./key-batch.ts";

describe("KeyBatch", () => {
  test("integers are spelled as String() spells them, -0 as 0 (property)", () => {
    const b = new KeyBatch();
    const check = (v: number) => {
      b.reset();
      b.begin(new Uint8Array(0));
      b.integer(v);
      b.finish();
      expect(b.key(0)).toBe(String(v === 0 ? 0 : v));
    };
    for (const v of [0, -0, 1, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 10 ** 15, 10 ** 15 - 1]) check(v);
    fc.assert(fc.property(fc.maxSafeInteger(), check), { numRuns: 5000 });
  });

  test("keys keep their bounds and ring start across growth of the buffer and the index", () => {
    const b = new KeyBatch();
    const prefix = new TextEncoder().encode("view@3/");
    const want: string[] = [];
    b.reset();
    for (let i = 0; i < 500; i++) {
      b.begin(prefix);
      b.put(new TextEncoder().encode("k=s"));
      const s = "x".repeat(i % 37);
      b.integer(s.length);
      b.byte(0x3a);
      expect(b.ascii(s)).toBe(true);
      b.finish();
      want.push(`view@3/k=s${s.length}:${s}`);
    }
    expect(b.count).toBe(500);
    for (let i = 0; i < 500; i++) {
      expect(b.key(i)).toBe(want[i]!);
      expect(b.ringStart[i]! - b.start[i]!).toBe(prefix.length);
    }
  });

  test("a non-ASCII string is refused and writes nothing", () => {
    const b = new KeyBatch();
    b.begin(new TextEncoder().encode("v@1/"));
    expect(b.ascii("abé")).toBe(false);
    expect(b.ascii("ab")).toBe(true);
    b.finish();
    expect(b.key(0)).toBe("v@1/ab");
    expect(() => KeyBatch.of(["v@1/k=s2:é!"])).toThrow(/not ASCII/);
  });

  test("of() routes each key from after its first slash, as ringKeyStart does", () => {
    const b = KeyBatch.of(["a@1/k=i1", "nokey"]);
    expect([b.key(0), b.key(1)]).toEqual(["a@1/k=i1", "nokey"]);
    expect([b.ringStart[0]! - b.start[0]!, b.ringStart[1]! - b.start[1]!]).toEqual([4, 0]);
  });
});
