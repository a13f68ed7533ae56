import protobuf from "protobufjs";
import { varint32Size } from "../http/byte-writer.ts";

/** Encoded sizes of protobuf pieces, so writers can emit a length before its body instead of forking. */
const utf8Length = protobuf.util.utf8.length;

export { varint32Size };

/** Varint size of an int64 held as a safe integer; negatives take 10 bytes. */
export function int64Size(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** A length-delimited field: tag bytes, length varint, body. */
export function nested(tagBytes: number, body: number): number {
  return tagBytes + varint32Size(body) + body;
}

export function stringFieldSize(s: string): number {
  return nested(1, utf8Length(s));
}

export function int64sSize(list: readonly number[]): number {
  let n = 0;
  for (const x of list) n += int64Size(x);
  return n;
}

/** Body of an Int64List: the packed field, when not empty. */
export function int64ListBody(list: readonly number[]): number {
  return list.length === 0 ? 0 : nested(1, int64sSize(list));
}

/** Body of a DoubleList of `count` elements. */
export function doubleListBody(count: number): number {
  return count === 0 ? 0 : nested(1, count * 8);
}

export function stringListBody(list: readonly string[]): number {
  let n = 0;
  for (const x of list) n += stringFieldSize(x);
  return n;
}
