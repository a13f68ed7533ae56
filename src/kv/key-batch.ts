import { digitCount, writeDigits } from "../text/decimal.ts";

/**
 * The storage keys of one raw read (`RawReader`), as ASCII bytes in one
 * reused buffer instead of a string per key: key i is `bytes[start[i] ..
 * end[i])`, and the part the ring routes by (the entity key, after the view's
 * `<view>@<version>/` prefix) starts at `ringStart[i]`.
 *
 * Only ASCII keys go here. For them a byte is a UTF-16 unit, so a hash over
 * the bytes equals the same hash over the key string (`hash64Bytes`,
 * `hashBytes`): a key finds the same owner and the same slot whichever form
 * it arrives in. A builder that meets a non-ASCII character says so
 * (`ascii` answers false) and the caller reads through the string path.
 *
 * Built and read within one synchronous call (a lookup's raw read), so one
 * batch per reader is reused request after request: building keys costs no
 * allocation once the buffer has grown to the largest request seen.
 */
export class KeyBatch {
  bytes = new Uint8Array(1024);
  start = new Int32Array(16);
  end = new Int32Array(16);
  ringStart = new Int32Array(16);
  /** 0, 1, 2, ...: picks every key of the batch (RawReader.readRaw). */
  all = identity(16);
  count = 0;
  private pos = 0;

  /** Starts a new batch. */
  reset(): void {
    this.count = 0;
    this.pos = 0;
  }

  /** Starts key `count` with the view's prefix; the ring part starts after it. */
  begin(prefix: Uint8Array): void {
    const k = this.count;
    if (k === this.start.length) this.growIndex();
    this.start[k] = this.pos;
    this.put(prefix);
    this.ringStart[k] = this.pos;
  }

  /** Ends the key begun last. */
  finish(): void {
    this.end[this.count++] = this.pos;
  }

  /** Prepared bytes (a join key's `name=i`, a separator). */
  put(b: Uint8Array): void {
    const n = b.length;
    this.ensure(n);
    const out = this.bytes;
    let p = this.pos;
    for (let i = 0; i < n; i++) out[p++] = b[i]!;
    this.pos = p;
  }

  byte(b: number): void {
    this.ensure(1);
    this.bytes[this.pos++] = b;
  }

  /** Appends `s` when it is all ASCII and answers true; otherwise writes nothing and answers false. */
  ascii(s: string): boolean {
    const n = s.length;
    this.ensure(n);
    const out = this.bytes;
    const p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return false;
      out[p + i] = c;
    }
    this.pos = p + n;
    return true;
  }

  /** A safe integer in decimal, as `String(v)` spells it (so -0 is "0"). */
  integer(v: number): void {
    if (v < 0) {
      this.byte(0x2d);
      v = -v;
    }
    const count = digitCount(v);
    this.ensure(count);
    writeDigits(this.bytes, this.pos + count, v, count);
    this.pos += count;
  }

  /** Key `i` as a string (tests, diagnostics). */
  key(i: number): string {
    let s = "";
    for (let p = this.start[i]!; p < this.end[i]!; p++) s += String.fromCharCode(this.bytes[p]!);
    return s;
  }

  /** Key `i` as a string, made natively (~40 ns): for readers keyed by strings (the L1 cache). */
  keyString(i: number): string {
    if (this.text.buffer !== this.bytes.buffer) this.text = Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    // ASCII only (see above): Latin-1 decoding is exact.
    return this.text.toString("latin1", this.start[i]!, this.end[i]!);
  }

  /** `bytes` as a Buffer, for keyString (replaced when `bytes` grows). */
  private text = Buffer.alloc(0);

  /** A batch holding `keys` (ASCII) routed from after each key's first "/" (as `ringKeyStart`): for tests and tools. */
  static of(keys: readonly string[]): KeyBatch {
    const b = new KeyBatch();
    for (const key of keys) {
      const slash = key.indexOf("/") + 1;
      const prefix = new TextEncoder().encode(key.slice(0, slash));
      if (prefix.length !== slash) fail(key);
      b.begin(prefix);
      if (!b.ascii(key.slice(slash))) fail(key);
      b.finish();
    }
    return b;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.pos));
    this.bytes = next;
  }

  private growIndex(): void {
    const size = this.start.length * 2;
    const grow = (a: Int32Array) => {
      const next = new Int32Array(size);
      next.set(a);
      return next;
    };
    this.start = grow(this.start);
    this.end = grow(this.end);
    this.ringStart = grow(this.ringStart);
    this.all = identity(size);
  }
}

function identity(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

function fail(key: string): never {
  throw new Error(`KeyBatch.of: "${key}" is not ASCII`);
}
