import type { FeatureValue } from "../../kv/kv-node.ts";
import { type ByteWriter, isAscii } from "./byte-writer.ts";

/**
 * MessagePack written into a ByteWriter, byte for byte as RowValuesEncoder
 * (src/kv/row-values-encoder.ts) encodes the same value: as @msgpack/msgpack
 * (smallest integer forms, other numbers float64), but -0 as float64 -0.
 */

const TWO_32 = 4294967296;

export function mpArrayHeader(w: ByteWriter, n: number): void {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) {
    w.u8(0xdc);
    w.u16(n);
  } else {
    w.u8(0xdd);
    w.u32(n);
  }
}

/**
 * Integers in their smallest MessagePack form, other numbers as float64 (as
 * @msgpack/msgpack does), and -0 as float64 -0, as stored rows write it
 * (src/kv/row-values-encoder.ts): an answer copying a stored -0 and one
 * writing the decoded value agree.
 */
export function mpNumber(w: ByteWriter, v: number): void {
  if (!Number.isSafeInteger(v)) {
    w.u8(0xcb);
    w.f64(v);
  } else if (v >= 0) {
    if (v < 0x80) {
      if (v === 0 && 1 / v < 0) {
        w.u8(0xcb);
        w.f64(v);
      } else w.u8(v);
    } else if (v < 0x100) {
      w.u8(0xcc);
      w.u8(v);
    } else if (v < 0x10000) {
      w.u8(0xcd);
      w.u16(v);
    } else if (v < TWO_32) {
      w.u8(0xce);
      w.u32(v);
    } else {
      w.u8(0xcf);
      w.i64(v);
    }
  } else if (v >= -0x20) w.u8(v & 0xff);
  else if (v >= -0x80) {
    w.u8(0xd0);
    w.u8(v & 0xff);
  } else if (v >= -0x8000) {
    w.u8(0xd1);
    w.u16(v & 0xffff);
  } else if (v >= -0x80000000) {
    w.u8(0xd2);
    w.u32(v >>> 0);
  } else {
    w.u8(0xd3);
    w.i64(v);
  }
}

/**
 * An event time (ms since epoch) in its smallest integer form, -0 as the
 * fixint 0: a time pushed as -0.0 is floored to -0 and kept so
 * (serving/event-time.ts), and mpNumber writes -0 as float 64 -0 (it keeps
 * a feature value's sign), which made an epoch time a float in the answer.
 */
export function mpTime(w: ByteWriter, ms: number): void {
  mpNumber(w, ms + 0);
}

export function mpString(w: ByteWriter, s: string): void {
  if (isAscii(s)) {
    mpStrHeader(w, s.length);
    w.ascii(s);
    return;
  }
  // UTF-8 length is known only once written: encode, then write the header and copy.
  const bytes = new TextEncoder().encode(s);
  mpStrHeader(w, bytes.length);
  w.bytes(bytes);
}

function mpStrHeader(w: ByteWriter, n: number): void {
  if (n < 32) w.u8(0xa0 | n);
  else if (n < 0x100) {
    w.u8(0xd9);
    w.u8(n);
  } else if (n < 0x10000) {
    w.u8(0xda);
    w.u16(n);
  } else {
    w.u8(0xdb);
    w.u32(n);
  }
}

export function mpValue(w: ByteWriter, v: FeatureValue | undefined): void {
  switch (typeof v) {
    case "number":
      mpNumber(w, v);
      return;
    case "bigint":
      // An int64 past 2^53: int 64 / uint 64, as stored rows and @msgpack/msgpack (useBigInt64) write it.
      w.u8(v < 0n ? 0xd3 : 0xcf);
      w.bigInt64(v);
      return;
    case "string":
      mpString(w, v);
      return;
    case "boolean":
      w.u8(v ? 0xc3 : 0xc2);
      return;
    case "object":
      if (v !== null) {
        mpArrayHeader(w, v.length);
        for (let i = 0; i < v.length; i++) mpValue(w, v[i] ?? null);
        return;
      }
  }
  w.u8(0xc0);
}

/**
 * A float feature's value (float64, float64[], embedding) as float 64: every
 * number, a whole one (2.0, which mpValue writes as the integer 2) and -0
 * too; a bigint (a whole float stored as int 64 / uint 64 past 2^53) as its
 * nearest double. Anything else (null, a value stored before the feature's
 * type changed) as mpValue writes it. The stored-bytes counterpart is
 * stored-msgpack.ts.
 */
export function mpDouble(w: ByteWriter, v: FeatureValue | undefined): void {
  if (typeof v === "object" && v !== null) {
    mpArrayHeader(w, v.length);
    for (let i = 0; i < v.length; i++) mpDoubleScalar(w, v[i] ?? null);
    return;
  }
  mpDoubleScalar(w, v);
}

function mpDoubleScalar(w: ByteWriter, v: FeatureValue | undefined): void {
  if (typeof v === "number" || typeof v === "bigint") {
    w.u8(0xcb);
    w.f64(Number(v));
  } else mpValue(w, v);
}
