import { digitCount, POW10, writeDigits } from "../../text/decimal.ts";

/**
 * An append-only byte buffer for answer encoders, reused across requests: an
 * answer costs no object tree and no serialiser string, only the copy the
 * Response makes. One writer per encoder, created at start-up; encoding is
 * synchronous, so a writer is never shared by two answers at once.
 */
/** `bytes` and `again` copy up to this many bytes with a loop, longer ones with TypedArray#set. */
const SMALL_COPY = 64;
/**
 * `copy` loops up to this many bytes: beyond SMALL_COPY, TypedArray#set is
 * faster by itself, but a copy from another array first needs a subarray (an
 * object per copy). A whole stored row (~150 bytes) copied with set made
 * 100-entity MessagePack answers slower (in-process, 1M rows: median 70 us
 * against 51 looping) than they were copying value by value.
 */
const LOOP_COPY = 512;

/** Largest buffer kept from one answer to the next (a 100-entity answer is ~37 KB; the cell limit allows ~20 MB). */
const KEEP_BYTES = 4 << 20;

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  pos = 0;
  private readonly utf8 = new TextEncoder();

  constructor(private readonly initialBytes = 64 * 1024) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Starts a new answer. A buffer a rare large answer grew past KEEP_BYTES is let go, so it does not stay for good. */
  reset(): void {
    this.pos = 0;
    if (this.buf.length > KEEP_BYTES) {
      this.buf = new Uint8Array(this.initialBytes);
      this.view = new DataView(this.buf.buffer);
    }
  }

  /**
   * The answer so far: a view of the writer's buffer, valid until the next
   * `reset`. `new Response(view)` copies it at construction (Bun; guarded by
   * native-answer.test.ts), so a second copy here would only add garbage.
   */
  written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written in [start, end), for keeping. */
  slice(start: number, end: number): Uint8Array {
    return this.buf.slice(start, end);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Prepared bytes (fragments built at start-up or registry load). */
  bytes(b: Uint8Array): void {
    const n = b.length;
    this.ensure(n);
    if (n > SMALL_COPY) {
      this.buf.set(b, this.pos);
      this.pos += n;
      return;
    }
    // Fragments are mostly a few bytes: a loop beats the native call's fixed cost
    // (TypedArray#set was 7% of server CPU in a lookup profile, for ~10-byte copies).
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = b[i]!;
    this.pos = p;
  }

  /** Bytes of another buffer, [start, end): stored values copied as they are. */
  copy(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n > LOOP_COPY) {
      this.buf.set(src.subarray(start, end), this.pos);
      this.pos += n;
      return;
    }
    const buf = this.buf;
    let p = this.pos;
    for (let i = start; i < end; i++) buf[p++] = src[i]!;
    this.pos = p;
  }

  /** Writes again the bytes at [start, end) of this answer (a value repeated within it). */
  again(start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n > SMALL_COPY) {
      this.buf.copyWithin(this.pos, start, end);
      this.pos += n;
      return;
    }
    const buf = this.buf;
    let p = this.pos;
    for (let i = start; i < end; i++) buf[p++] = buf[i]!;
    this.pos = p;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** A string known to be ASCII (number text, checked strings). */
  ascii(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** Any string as UTF-8; returns the byte count written. */
  utf8String(s: string): number {
    this.ensure(s.length * 3);
    const { written } = this.utf8.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    return written;
  }

  /** A little-endian float64 (protobuf's `double`). */
  f64le(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** A varint below 2^32 (protobuf tags, lengths and counts). */
  varint32(v: number): void {
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
  }

  /** An unsigned 64-bit varint from its 32-bit halves. */
  varint64(lo: number, hi: number): void {
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
  }

  /**
   * Puts `len`'s varint in front of the bytes written since `start`, moving
   * them right: a length-prefixed body written before its length was known.
   */
  prefixLength(start: number): void {
    const len = this.pos - start;
    const k = varint32Size(len);
    this.ensure(k);
    this.buf.copyWithin(start + k, start, this.pos);
    const end = this.pos + k;
    this.pos = start;
    this.varint32(len);
    this.pos = end;
  }


  /** A non-negative integer below 2^53 in decimal, without an intermediate string. */
  decimal(v: number): void {
    const count = digitCount(v);
    this.ensure(count);
    writeDigits(this.buf, this.pos + count, v, count);
    this.pos += count;
  }

  /**
   * n / 10^f in fixed-point notation, for an integer 0 <= n < 2^53 and
   * 1 <= f <= 15: the fraction zero-padded to f digits, the integer part
   * "0" when n < 10^f ((588, 4) -> "0.0588", (381, 2) -> "3.81").
   */
  fixedPoint(n: number, f: number): void {
    const digits = digitCount(n);
    const intDigits = digits > f ? digits - f : 1;
    const width = intDigits + 1 + f;
    this.ensure(width);
    const buf = this.buf;
    const end = this.pos + width;
    this.pos = end;
    if (n < 2147483648) {
      // Every part fits int32: one digit loop from the right, the point in between (no % or / on doubles).
      let t = n | 0;
      let p = end - 1;
      for (let d = 0; d < f; d++, p--) {
        const q = (t / 10) | 0;
        buf[p] = 48 + t - q * 10;
        t = q;
      }
      buf[p--] = 0x2e;
      for (let d = 0; d < intDigits; d++, p--) {
        const q = (t / 10) | 0;
        buf[p] = 48 + t - q * 10;
        t = q;
      }
      return;
    }
    const scale = POW10[f]!;
    // Exact: both parts are integers below 2^53.
    const frac = n % scale;
    const point = end - f - 1;
    writeDigits(buf, point, (n - frac) / scale, intDigits);
    buf[point] = 0x2e;
    writeDigits(buf, end, frac, f);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }

  /** An integer beyond 32 bits (|v| < 2^53), as the 8-byte big-endian two's complement MessagePack uses. */
  i64(v: number): void {
    this.ensure(8);
    const hi = Math.floor(v / 4294967296);
    this.view.setInt32(this.pos, hi);
    this.view.setUint32(this.pos + 4, v - hi * 4294967296);
    this.pos += 8;
  }

  /** An int64 held as a bigint, as 8 big-endian bytes (two's complement: a uint 64 below 2^63 has the same bytes). */
  bigInt64(v: bigint): void {
    this.ensure(8);
    this.view.setBigInt64(this.pos, BigInt.asIntN(64, v));
    this.pos += 8;
  }
}

/** Is every char of `s` ASCII (so its UTF-8 length is its length)? */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Bytes of the varint for 0 <= v < 2^32. */
export function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}
