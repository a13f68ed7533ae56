import { expect, test } from "bun:test";
import fc from "fast-check";
import protobuf from "protobufjs";
import { strictReader } from "./strict-reader.ts";

const Message = new protobuf.Type("M").add(new protobuf.Field("name", 1, "string")).add(new protobuf.Field("tags", 2, "string", "repeated"));

/** Field 1 (a string) holding `bytes` as they are. */
function withName(bytes: number[]): Buffer {
  return Buffer.from([0x0a, bytes.length, ...bytes]);
}

test("string fields must be UTF-8 within the message; protobufjs alone read bad bytes as U+FFFD, two keys as one", () => {
  const lenient = (b: Buffer) => (Message.decode(b) as unknown as { name: string }).name;
  const strict = (b: Buffer) => (Message.decode(strictReader(b)) as unknown as { name: string }).name;
  expect(lenient(withName([0x6b, 0xfe]))).toBe(lenient(withName([0x6b, 0xff])));
  expect(() => strict(withName([0x6b, 0xfe]))).toThrow("a string field is not valid UTF-8");
  expect(() => strict(withName([0x41, 0xc0, 0xaf]))).toThrow("not valid UTF-8");
  expect(strict(withName([...Buffer.from("c42")]))).toBe("c42");
  expect(strict(withName([...Buffer.from("g\u00e9 \u{1f600}")]))).toBe("g\u00e9 \u{1f600}");
  expect(strict(Buffer.from([0x0a, 0]))).toBe("");
  // A length past the message's end: protobufjs cut the string short and answered the rest of the message as absent.
  expect(() => strict(Buffer.from([0x0a, 9, 0x61]))).toThrow("runs past the end");
  const both = Buffer.concat([withName([...Buffer.from("a")]), Buffer.from([0x12, 2, 0x78, 0x79]), Buffer.from([0x12, 1, 0x7a])]);
  expect(Message.decode(strictReader(both)).toJSON()).toEqual({ name: "a", tags: ["xy", "z"] });
});

test("int64s below 2^49 decode to numbers, every other int64 to the same value protobufjs reads (property)", () => {
  const Ints = new protobuf.Type("I").add(new protobuf.Field("v", 1, "int64", "repeated")).add(new protobuf.Field("one", 2, "int64"));
  const exact = (v: unknown) => (typeof v === "number" ? BigInt(v) : BigInt((v as { toString(): string }).toString()));
  const edges = [0n, 1n, 127n, 128n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 53n), -(2n ** 63n)];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(...edges)), { maxLength: 20 }), (values) => {
      const bytes = Buffer.from(Ints.encode({ v: values.map(String), one: values[0] === undefined ? 0 : String(values[0]) }).finish());
      const ours = Ints.decode(strictReader(bytes)) as unknown as { v: unknown[]; one: unknown };
      const theirs = Ints.decode(bytes) as unknown as { v: unknown[]; one: unknown };
      expect(ours.v.map(exact)).toEqual(theirs.v.map(exact));
      expect(ours.v.map(exact)).toEqual(values);
      expect(exact(ours.one)).toEqual(exact(theirs.one));
      for (const [i, v] of ours.v.entries()) expect(typeof v === "number").toBe(values[i]! >= 0n && values[i]! < 2n ** 49n);
    }),
    { numRuns: 500, seed: 20261207 },
  );
  // Cut short inside a varint: an error, as protobufjs's own reading answers.
  expect(() => Ints.decode(strictReader(Buffer.from([0x08, 0x80, 0x80])))).toThrow();
});
