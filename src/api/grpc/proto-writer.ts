/**
 * A protobuf wire writer for hot answers, with the calls of protobufjs's
 * Writer that the answer encoders use (`uint32`, `int64`, `double`, `bool`,
 * `string`, `fork`/`ldelim`, `finish`) and the same bytes. protobufjs queues
 * an operation object per field and copies them out in `finish`: a
 * 100-entity × 10-feature lookup answer was ~3,000 objects. This one writes
 * into a buffer it keeps between answers: a nested message's body is written
 * in place and moved right by its length prefix when it closes.
 *
 * One writer per encoder; encoding is synchronous, so a writer never holds
 * two answers at once. `finish` hands out a copy (gRPC keeps the bytes after
 * the call returns).
 */
export class ProtoWriter {
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  /** Body starts of the open nested messages. */
  private readonly forks: number[] = [];
  private readonly utf8 = new TextEncoder();

  /** Starts a new message. */
  reset(): this {
    this.pos = 0;
    this.forks.length = 0;
    return this;
  }

  /** A varint below 2^32 (tags, lengths, counts, enum values). */
  uint32(v: number): this {
    this.ensure(5);
    const buf = this.buf;
    let p = this.pos;
    let x = v >>> 0;
    while (x >= 0x80) {
      buf[p++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    buf[p++] = x;
    this.pos = p;
    return this;
  }

  /** An int64 held as a number (fraction dropped, as protobufjs does); negatives take 10 bytes. */
  int64(v: number): this {
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
    return this.varint64(lo, hi);
  }

  /** An int32 (enum values, codes); negatives take 10 bytes, as protobufjs writes them. */
  int32(v: number): this {
    return v >= 0 ? this.uint32(v) : this.int64(v | 0);
  }

  /** A uint64 given as a non-negative number or as protobufjs's Long halves. */
  uint64(v: number | { readonly low: number; readonly high: number }): this {
    return typeof v === "number" ? this.int64(v) : this.varint64(v.low, v.high);
  }

  /** An unsigned 64-bit varint from its 32-bit halves. */
  varint64(lo: number, hi: number): this {
    this.ensure(10);
    const buf = this.buf;
    let p = this.pos;
    let l = lo >>> 0;
    let h = hi >>> 0;
    while (h !== 0 || l >= 0x80) {
      buf[p++] = (l & 0x7f) | 0x80;
      l = ((l >>> 7) | (h << 25)) >>> 0;
      h >>>= 7;
    }
    buf[p++] = l;
    this.pos = p;
    return this;
  }

  double(v: number): this {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
    return this;
  }

  /** A length-prefixed UTF-8 string. ASCII (most names and values) is copied as it is, in one pass. */
  string(s: string): this {
    const n = s.length;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      this.uint32(n);
      this.ensure(n);
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i);
      this.pos = p;
      return this;
    }
    const bytes = this.utf8.encode(s);
    this.uint32(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** Opens a nested message (or packed field); `ldelim` closes it with its length in front. */
  fork(): this {
    this.forks.push(this.pos);
    return this;
  }

  ldelim(): this {
    const start = this.forks.pop();
    if (start === undefined) throw new Error("ProtoWriter: ldelim without fork");
    const len = this.pos - start;
    const k = len < 0x80 ? 1 : len < 0x4000 ? 2 : len < 0x200000 ? 3 : len < 0x10000000 ? 4 : 5;
    this.ensure(k);
    const buf = this.buf;
    buf.copyWithin(start + k, start, this.pos);
    let p = start;
    let x = len;
    while (x >= 0x80) {
      buf[p++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    buf[p] = x;
    this.pos += k;
    return this;
  }

  /** The message written since `reset`, as a copy of its own. */
  finish(): Uint8Array {
    if (this.forks.length !== 0) throw new Error("ProtoWriter: finish with an open fork");
    return this.buf.slice(0, this.pos);
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}
