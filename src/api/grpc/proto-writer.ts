import { int64Halves } from "../../kv/int64.ts";
import { ByteWriter, isAscii } from "../http/byte-writer.ts";

/**
 * A protobuf wire writer for hot answers, with the calls of protobufjs's
 * Writer that the answer encoders use (`uint32`, `int32`, `int64`, `uint64`,
 * `double`, `bool`, `string`, `fork`/`ldelim`, `finish`) and the same bytes.
 * protobufjs queues an operation object per field and copies them out in
 * `finish`: a 100-entity × 10-feature lookup answer was ~3,000 objects.
 * This one writes into a ByteWriter kept between answers: a nested
 * message's body is written in place and moved right by its length prefix
 * when it closes.
 *
 * One writer per encoder; encoding is synchronous, so a writer never holds
 * two answers at once. `finish` hands out a copy (gRPC keeps the bytes after
 * the call returns).
 */
export class ProtoWriter {
  private readonly out = new ByteWriter();
  /** Body starts of the open nested messages. */
  private readonly forks: number[] = [];
  private readonly utf8 = new TextEncoder();

  /** Starts a new message. */
  reset(): this {
    this.out.reset();
    this.forks.length = 0;
    return this;
  }

  /** A varint below 2^32 (tags, lengths, counts, enum values). */
  uint32(v: number): this {
    this.out.varint32(v);
    return this;
  }

  /** An int32 (enum values, codes); negatives take 10 bytes, as protobufjs writes them. */
  int32(v: number): this {
    return v >= 0 ? this.uint32(v) : this.int64(v | 0);
  }

  /** An int64 held as a number (fraction dropped, as protobufjs does) or, past 2^53, a bigint; negatives take 10 bytes. */
  int64(v: number | bigint): this {
    if (typeof v === "bigint") {
      const { lo, hi } = int64Halves(v);
      this.out.varint64(lo, hi);
      return this;
    }
    const t = Math.trunc(v);
    if (t >= 0 && t < 0x100000000) return this.uint32(t);
    const neg = t < 0;
    const a = neg ? -t : t;
    let lo = a >>> 0;
    let hi = Math.floor(a / 0x100000000) >>> 0;
    if (neg) {
      // Two's complement of the 64-bit magnitude.
      lo = ~lo >>> 0;
      hi = ~hi >>> 0;
      if (++lo > 0xffffffff) {
        lo = 0;
        hi = (hi + 1) >>> 0;
      }
    }
    this.out.varint64(lo, hi);
    return this;
  }

  /** A uint64 given as a non-negative number or as protobufjs's Long halves. */
  uint64(v: number | { readonly low: number; readonly high: number }): this {
    if (typeof v === "number") return this.int64(v);
    this.out.varint64(v.low, v.high);
    return this;
  }

  double(v: number): this {
    this.out.f64le(v);
    return this;
  }

  bool(v: boolean): this {
    this.out.u8(v ? 1 : 0);
    return this;
  }

  /** A length-prefixed UTF-8 string; ASCII (most names and values) is copied as it is. */
  string(s: string): this {
    if (isAscii(s)) {
      this.out.varint32(s.length);
      this.out.ascii(s);
      return this;
    }
    const bytes = this.utf8.encode(s);
    this.out.varint32(bytes.length);
    this.out.bytes(bytes);
    return this;
  }

  /** A length-prefixed string given as its UTF-8 bytes, `src[start..end)` (a stored value, copied as it is). */
  stringBytes(src: Uint8Array, start: number, end: number): this {
    this.out.varint32(end - start);
    this.out.copy(src, start, end);
    return this;
  }

  /** Bytes written by another writer (`written`), copied as they are: a block repeated within a message. */
  raw(bytes: Uint8Array): this {
    this.out.bytes(bytes);
    return this;
  }

  /** Opens a nested message (or packed field); `ldelim` closes it with its length in front. */
  fork(): this {
    this.forks.push(this.out.pos);
    return this;
  }

  ldelim(): this {
    const start = this.forks.pop();
    if (start === undefined) throw new Error("ProtoWriter: ldelim without fork");
    this.out.prefixLength(start);
    return this;
  }

  /** The bytes written since `reset`, as a view valid until the next `reset` (for `raw`, not for keeping). */
  written(): Uint8Array {
    if (this.forks.length !== 0) throw new Error("ProtoWriter: written with an open fork");
    return this.out.written();
  }

  /** The message written since `reset`, as a copy of its own. */
  finish(): Uint8Array {
    if (this.forks.length !== 0) throw new Error("ProtoWriter: finish with an open fork");
    return this.out.slice(0, this.out.pos);
  }
}
