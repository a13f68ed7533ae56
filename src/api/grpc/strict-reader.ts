import protobuf from "protobufjs";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A protobuf reader that holds `string` fields to proto3's rule: valid UTF-8,
 * within the message. protobufjs decodes them leniently — bad bytes become
 * U+FFFD and a length past the end is cut short — so two different keys sent
 * over gRPC (`k\xfe`, `k\xff`) were stored as one entity, and pushed text did
 * not read back as sent; HTTP refuses such bodies. Here either is a decode
 * failure (INVALID_ARGUMENT). ASCII, the usual key and name, is checked by a
 * scan and sliced as protobufjs would.
 */
export class StrictReader extends protobuf.BufferReader {
  override string(): string {
    const len = this.uint32();
    const start = this.pos;
    const end = start + len;
    if (end > this.len) throw new RangeError(`a string field's length (${len} bytes) runs past the end of the message`);
    this.pos = end;
    const buf = this.buf;
    for (let i = start; i < end; i++) {
      if (buf[i]! >= 0x80) {
        try {
          return strictUtf8.decode(buf.subarray(start, end));
        } catch {
          throw new RangeError("a string field is not valid UTF-8 (proto3 strings must be; send bytes as base64 text)");
        }
      }
    }
    return (buf as Buffer).toString("latin1", start, end);
  }
}

/** A reader over `buf` for `Type.decode`. */
export function strictReader(buf: Buffer): StrictReader {
  return new StrictReader(buf);
}
