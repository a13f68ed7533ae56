import { describe, expect, test } from "bun:test";
import { bunDigests, type Digests, digests, nodeDigests } from "./digest.ts";

const utf8 = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

// FIPS 180 test vectors ("abc") and the empty input.
const SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA1_ABC = "a9993e364706816aba3e25717850c26c9cd0d89d";

const implementations: [string, Digests][] = [
  ["Bun's native hasher", bunDigests() as Digests],
  ["node:crypto (the fallback off Bun)", nodeDigests()],
];

describe("digests", () => {
  test("on Bun, the runtime's digests are the native ones", () => {
    expect(bunDigests()).toBeDefined();
    expect(digests.sha256Hex("abc")).toBe(SHA256_ABC);
  });

  for (const [name, d] of implementations) {
    describe(name, () => {
      test("SHA-256 and SHA-1 of known vectors, from text and from bytes alike", () => {
        expect(d.sha256Hex("abc")).toBe(SHA256_ABC);
        expect(d.sha256Hex(utf8.encode("abc"))).toBe(SHA256_ABC);
        expect(d.sha256Hex("")).toBe(SHA256_EMPTY);
        expect(hex(d.sha256("abc"))).toBe(SHA256_ABC);
        // A plain Uint8Array, not a Buffer (whose slice() would be a view, not a copy).
        expect(d.sha256("abc").constructor).toBe(Uint8Array);
        expect(d.sha1Hex("abc")).toBe(SHA1_ABC);
        expect(d.sha1Hex(utf8.encode("abc"))).toBe(SHA1_ABC);
      });

      test("text is hashed as UTF-8", () => {
        expect(d.sha256Hex("é")).toBe(d.sha256Hex(new Uint8Array([0xc3, 0xa9])));
      });

      test("timingSafeEqual: equal contents only; a different length is unequal, not an error", () => {
        const a = d.sha256("token");
        expect(d.timingSafeEqual(a, d.sha256("token"))).toBe(true);
        expect(d.timingSafeEqual(a, d.sha256("tokem"))).toBe(false);
        const flipped = a.slice();
        flipped[31]! ^= 1;
        expect(d.timingSafeEqual(a, flipped)).toBe(false);
        expect(d.timingSafeEqual(a, a.subarray(0, 16))).toBe(false);
        expect(d.timingSafeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
      });
    });
  }

  test("both implementations agree on arbitrary input", () => {
    const [, bun] = implementations[0]!;
    const [, node] = implementations[1]!;
    for (const s of ["", "a", "driver_hourly_stats:conv_rate", "x".repeat(10_000), "ü∑ß"]) {
      expect(bun.sha256Hex(s)).toBe(node.sha256Hex(s));
      expect(bun.sha1Hex(s)).toBe(node.sha1Hex(s));
    }
  });
});
