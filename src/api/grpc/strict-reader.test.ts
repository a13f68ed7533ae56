import { expect, test } from "bun:test";
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
