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

  /**
   * An int64 below 2^49 (a varint of at most 7 bytes: entity keys, ids, ms
   * event times) as a number; any other (larger, or negative: 10 bytes) as
   * protobufjs reads it, a Long. Every consumer takes either (values.ts
   * `int64Of`). protobufjs made a Long of each: 4 MiB of packed int64 keys
   * decoded to 242 MB in 351 ms; as numbers, 40 MB in 108 ms (a 3-key
   * Lookup: 399 → 310 ns to decode).
   */
  override int64(): protobuf.Long {
    const buf = this.buf;
    let pos = this.pos;
    const end = Math.min(this.len, pos + 7);
    let value = 0;
    for (let scale = 1; pos < end; scale *= 128) {
      const b = buf[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.pos = pos;
        // protobufjs declares a Long; the decoded messages' types say `number | Long` (quiver-service.ts, values.ts).
        return value as unknown as protobuf.Long;
      }
    }
    return super.int64();
  }
}

/** A reader over `buf` for `Type.decode`. */
export function strictReader(buf: Buffer): StrictReader {
  return new StrictReader(buf);
}
