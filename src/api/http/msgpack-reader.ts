import { int64At, uint64At } from "../../kv/int64.ts";

/**
 * A MessagePack decoder for request bodies. @msgpack/msgpack's Decoder
 * allocates ~9 KB to decode a 400-byte lookup (its JS UTF-8 path grows an
 * array per string); this one decodes strings natively (TextDecoder on a
 * view), hands back short strings it has decoded before from an intern table
 * (names repeat in every request), and allocates only the values it returns
 * (`npm run bench -- lookup-alloc`).
 *
 * Same values as @msgpack/msgpack for what a request can hold (nil, bool,
 * ints up to 64 bits as numbers — but a bigint for one past 2^53 (src/kv/int64.ts), floats, str, bin as Uint8Array, arrays, maps
 * with string or number keys); ext types are refused. Every length is checked
 * against the bytes left and the limits, and nesting is bounded, so no input
 * can crash the process or make it allocate more than the body justifies.
 */
export interface MsgpackLimits {
  readonly maxStrLength: number;
  readonly maxArrayLength: number;
  readonly maxMapLength: number;
  readonly maxDepth: number;
}

/** Thrown when a body holds more maps and arrays than its decode allows. */
export class TooManyContainers extends Error {}

export class MsgpackReader {
  private bytes: Uint8Array = new Uint8Array(0);
  /** Maps and arrays the current decode may still open. */
  private containersLeft = 0;
  private view: DataView = new DataView(this.bytes.buffer);
  private pos = 0;
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(private readonly limits: MsgpackLimits) {}

  /**
   * Decodes exactly one value filling `bytes`, holding at most `maxContainers`
   * maps and arrays (a one-byte empty map decodes into an object: without a
   * budget a 4 MiB body made four million); throws an Error describing the
   * first problem, TooManyContainers past the budget.
   */
  decode(bytes: Uint8Array, maxContainers = Number.MAX_SAFE_INTEGER): unknown {
    this.containersLeft = maxContainers;
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    const value = this.value(0);
    if (this.pos !== bytes.length) throw new Error(`extra bytes after the value at byte ${this.pos}`);
    return value;
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new Error(`unexpected end of data at byte ${this.pos} (needs ${n} more)`);
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  private value(depth: number): unknown {
    const at = this.pos;
    const b = this.u8();
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b < 0xc0) return this.str(b & 0x1f);
    if (b >= 0x90 && b < 0xa0) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b < 0x90) return this.map(b & 0x0f, depth);
    const v = this.view;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.u8());
      case 0xc5:
        return this.bin(this.u16());
      case 0xc6:
        return this.bin(this.u32());
      case 0xca:
        this.need(4);
        this.pos += 4;
        return v.getFloat32(this.pos - 4);
      case 0xcb:
        this.need(8);
        this.pos += 8;
        return v.getFloat64(this.pos - 8);
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf:
        // Past 2^53 a bigint, exact (src/kv/int64.ts); the number it used to be had lost digits.
        this.need(8);
        this.pos += 8;
        return uint64At(v, this.pos - 8);
      case 0xd0:
        this.need(1);
        return v.getInt8(this.pos++);
      case 0xd1:
        this.need(2);
        this.pos += 2;
        return v.getInt16(this.pos - 2);
      case 0xd2:
        this.need(4);
        this.pos += 4;
        return v.getInt32(this.pos - 4);
      case 0xd3:
        this.need(8);
        this.pos += 8;
        return int64At(v, this.pos - 8);
      case 0xd9:
        return this.str(this.u8());
      case 0xda:
        return this.str(this.u16());
      case 0xdb:
        return this.str(this.u32());
      case 0xdc:
        return this.array(this.u16(), depth);
      case 0xdd:
        return this.array(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
    }
    if (b === 0xc1) throw new Error(`byte 0xc1 is never used in MessagePack (at byte ${at})`);
    throw new Error(`extension types are not accepted (type byte 0x${b.toString(16)} at byte ${at})`);
  }

  private str(n: number): string {
    if (n > this.limits.maxStrLength) throw new Error(`string of ${n} bytes exceeds the limit of ${this.limits.maxStrLength}`);
    this.need(n);
    const start = this.pos;
    this.pos += n;
    if (n <= MAX_INTERNED) return this.interned.get(this.bytes, start, n, this.utf8);
    return this.utf8.decode(this.bytes.subarray(start, start + n));
  }

  private readonly interned = new InternedStrings();

  private bin(n: number): Uint8Array {
    this.need(n);
    this.pos += n;
    return this.bytes.slice(this.pos - n, this.pos);
  }

  private array(n: number, depth: number): unknown[] {
    if (n > this.limits.maxArrayLength) throw new Error(`array of ${n} items exceeds the limit of ${this.limits.maxArrayLength}`);
    if (n > this.bytes.length - this.pos) throw new Error(`array of ${n} items cannot fit in the ${this.bytes.length - this.pos} bytes left`);
    if (depth >= this.limits.maxDepth) throw new Error(`nesting deeper than ${this.limits.maxDepth}`);
    if (--this.containersLeft < 0) throw new TooManyContainers();
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  private map(n: number, depth: number): Record<string, unknown> {
    if (n > this.limits.maxMapLength) throw new Error(`map of ${n} entries exceeds the limit of ${this.limits.maxMapLength}`);
    if (n * 2 > this.bytes.length - this.pos) throw new Error(`map of ${n} entries cannot fit in the ${this.bytes.length - this.pos} bytes left`);
    if (depth >= this.limits.maxDepth) throw new Error(`nesting deeper than ${this.limits.maxDepth}`);
    if (--this.containersLeft < 0) throw new TooManyContainers();
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const key = this.value(depth + 1);
      if (typeof key !== "string" && typeof key !== "number") throw new Error(`map keys must be strings or numbers (at byte ${at})`);
      // A key twice (or 1 and "1", one property) would keep the last silently: in a push, which entity is written.
      if (Object.hasOwn(out, key)) throw new Error(`map key ${JSON.stringify(String(key))} appears twice (at byte ${at})`);
      const v = this.value(depth + 1);
      // Own property even for "__proto__": a body never changes an object's prototype.
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
    }
    return out;
  }
}

/** Strings up to this many bytes go through the intern table. */
const MAX_INTERNED = 64;
/** Slots of the intern table (a power of two): a few KB, enough for every field and feature name a pod's clients send. */
const INTERN_SLOTS = 1024;

/**
 * Short strings decoded recently, by their UTF-8 bytes. A lookup's field
 * names, feature names and join-key names come again in every request; a
 * hit costs a hash and a compare of the bytes (~40 ns for a 30-byte name)
 * instead of a TextDecoder call on a new view (~75-100 ns) and hands back
 * the same string, so a MessagePack lookup allocates its strings once, not
 * per request. A slot holds the last string that hashed to it; a miss
 * decodes and replaces it, so the table stays bounded whatever clients send.
 */
class InternedStrings {
  private readonly keys: (Uint8Array | undefined)[] = new Array(INTERN_SLOTS).fill(undefined);
  private readonly values: string[] = new Array(INTERN_SLOTS).fill("");

  get(b: Uint8Array, start: number, n: number, utf8: TextDecoder): string {
    // FNV-1a over the bytes.
    let h = 0x811c9dc5;
    for (let i = start; i < start + n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    const slot = (h >>> 0) & (INTERN_SLOTS - 1);
    const key = this.keys[slot];
    if (key !== undefined && key.length === n) {
      let i = 0;
      while (i < n && key[i] === b[start + i]) i++;
      if (i === n) return this.values[slot]!;
    }
    // Decoded first: bytes that are not UTF-8 throw and are never remembered.
    const value = utf8.decode(b.subarray(start, start + n));
    this.keys[slot] = b.slice(start, start + n);
    this.values[slot] = value;
    return value;
  }
}
