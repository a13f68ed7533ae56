import protobuf from "protobufjs";
import { varint32Size } from "../http/byte-writer.ts";

/** Encoded sizes of protobuf pieces, so writers can emit a length before its body instead of forking. */
const utf8Length = protobuf.util.utf8.length;

export { varint32Size };

const TWO_49 = 2n ** 49n;
const TWO_56 = 2n ** 56n;

/** Varint size of an int64 held as a safe integer or (past 2^53) a bigint; negatives take 10 bytes. */
export function int64Size(v: number | bigint): number {
  if (v < 0) return 10;
  if (typeof v === "bigint") return v < TWO_49 ? int64Size(Number(v)) : v < TWO_56 ? 8 : 9;
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
