import { expect, test } from "bun:test";
import { DecodeFailure, Undecoded } from "./call.ts";
import { loadProtos } from "./protos.ts";

const LookupRequest = loadProtos().type("quiver.v1.LookupRequest");
const encode = (obj: Record<string, unknown>) => Buffer.from(LookupRequest.encode(LookupRequest.fromObject(obj)).finish());

test("an Undecoded message decodes once, strictly, and lets its bytes go; its id can be read without decoding the rest", () => {
  const bytes = encode({ features: ["v:f"], entities: [{ name: "k", int64_values: [1, 2] }], id: 42 });
  const u = new Undecoded(bytes, LookupRequest);
  expect(Number(u.peekUint64(6))).toBe(42);
  const decoded = u.decode() as { features: string[]; id: unknown };
  expect([decoded.features, Number(decoded.id)]).toEqual([["v:f"], 42]);
  // Read once: the bytes are gone (a call holds none of them while its work runs).
  expect(u.decode()).toBeInstanceOf(DecodeFailure);
  expect(u.peekUint64(6)).toBe(0);
  // Not UTF-8: refused as on arrival before.
  expect(new Undecoded(Buffer.from([0x0a, 2, 0x6b, 0xfe]), LookupRequest).decode()).toBeInstanceOf(DecodeFailure);
  // No id, or bytes that are no message: 0, never a throw.
  expect(new Undecoded(encode({ features: ["v:f"] }), LookupRequest).peekUint64(6)).toBe(0);
  expect(new Undecoded(Buffer.from([0x30, 0x80]), LookupRequest).peekUint64(6)).toBe(0);
  expect(new Undecoded(Buffer.from([0xff, 0xff, 0xff]), LookupRequest).peekUint64(6)).toBe(0);
  // The last id wins, as a decoder keeps it; above 2^53 exactly.
  const twice = Buffer.concat([encode({ id: 1 }), encode({ id: "18446744073709551615" })]);
  expect(String(new Undecoded(twice, LookupRequest).peekUint64(6))).toBe("18446744073709551615");
});
