import { Decoder } from "@msgpack/msgpack";
import { canonicalInt64, int64At, uint64At } from "./int64.ts";
import type { FeatureValue } from "./kv-node.ts";

/** Thrown (never escapes) when a row holds something the fast path does not handle. */
const UNSUPPORTED = new Error("msgpack type outside the fast path");

/**
 * Decodes the MessagePack values of a stored row straight out of an arena
 * slab. The arena decodes on every read (MemoryKvNode handed back objects),
 * and @msgpack/msgpack spends ~550 ns on a 10-feature row — most of it
 * generic state-machine and per-call setup. This handles exactly the shapes
 * FeatureValue allows (nil, bools, ints, floats, strings, arrays) with direct
 * reads from the slab's DataView, no subarray per row.
 *
 * Anything else — maps, binary, extensions, strings that may hold a lone
 * surrogate (the library writes those as raw 0xED sequences, which only its
 * own decoder restores) — makes the whole row go through @msgpack/msgpack, so
 * results are always the library's — except that an int 64 / uint 64 outside
 * the safe range is a bigint (src/kv/int64.ts), in both paths.
 */
export class RowValuesDecoder {
  private readonly fallback = new Decoder({ useBigInt64: true });
  private bytes: Buffer = Buffer.alloc(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private pos = 0;

  /** Decodes `bytes[start..end)`, which must be one MessagePack array. `view` covers the same buffer. */
  decode(bytes: Buffer, view: DataView, start: number, end: number): FeatureValue[] {
    this.bytes = bytes;
    this.view = view;
    this.pos = start;
    try {
      const out = this.value(0);
      if (Array.isArray(out) && this.pos === end) return out as FeatureValue[];
    } catch (e) {
      if (e !== UNSUPPORTED && !(e instanceof RangeError)) throw e;
    }
    return canonicalRow(this.fallback.decode(bytes.subarray(start, end)));
  }

  private value(depth: number): unknown {
    const b = this.bytes[this.pos++]!;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth + 1);
    const v = this.view;
    const p = this.pos;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca:
        this.pos = p + 4;
        return v.getFloat32(p);
      case 0xcb:
        this.pos = p + 8;
        return v.getFloat64(p);
      case 0xcc:
        this.pos = p + 1;
        return v.getUint8(p);
      case 0xcd:
        this.pos = p + 2;
        return v.getUint16(p);
      case 0xce:
        this.pos = p + 4;
        return v.getUint32(p);
      case 0xcf:
        this.pos = p + 8;
        return uint64At(v, p);
      case 0xd0:
        this.pos = p + 1;
        return v.getInt8(p);
      case 0xd1:
        this.pos = p + 2;
        return v.getInt16(p);
      case 0xd2:
        this.pos = p + 4;
        return v.getInt32(p);
      case 0xd3:
        this.pos = p + 8;
        return int64At(v, p);
      case 0xd9:
        this.pos = p + 1;
        return this.str(v.getUint8(p));
      case 0xda:
        this.pos = p + 2;
        return this.str(v.getUint16(p));
      case 0xdb:
        this.pos = p + 4;
        return this.str(v.getUint32(p));
      case 0xdc:
        this.pos = p + 2;
        return this.array(v.getUint16(p), depth + 1);
      case 0xdd:
        this.pos = p + 4;
        return this.array(v.getUint32(p), depth + 1);
      default:
        throw UNSUPPORTED;
    }
  }

  private array(n: number, depth: number): unknown[] {
    // A row nests one level (row → embedding); deeper is left to the fallback.
    if (depth > 2 || n > this.bytes.length - this.pos) throw UNSUPPORTED;
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth);
    return out;
  }

  private str(len: number): string {
    const s = this.bytes;
    const start = this.pos;
    const end = start + len;
    if (end > s.length) throw UNSUPPORTED;
    let high = 0;
    for (let i = start; i < end; i++) {
      const c = s[i]!;
      if (c === 0xed) throw UNSUPPORTED;
      high |= c;
    }
    this.pos = end;
    // ASCII is its own latin1, the cheapest flat string Bun builds from bytes.
    return s.toString(high < 0x80 ? "latin1" : "utf8", start, end);
  }
}

/** The library's decoding (useBigInt64: every 64-bit format a bigint) in canonical form: safe ones as numbers. */
function canonicalRow(decoded: unknown): FeatureValue[] {
  const row = decoded as unknown[];
  if (!Array.isArray(row)) return row as FeatureValue[];
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (typeof v === "bigint") row[i] = canonicalInt64(v);
    else if (Array.isArray(v)) for (let k = 0; k < v.length; k++) if (typeof v[k] === "bigint") v[k] = canonicalInt64(v[k] as bigint);
  }
  return row as FeatureValue[];
}
