import { afterStoredScalar, storedArrayLength, storedArrayStart, storedNumberOr0 } from "../../kv/stored-value.ts";
import type { ByteWriter } from "./byte-writer.ts";

/**
 * A float feature's stored value (float64, float64[], embedding) in a
 * MessagePack answer. Stored rows are written by @msgpack/msgpack, which
 * encodes a whole number as an integer: 2.0 is stored as the fixint 2, and
 * rows stored before -0 was kept (src/kv/row-values-encoder.ts) hold -0.0 as
 * 0. Copied as they are, a typed client (Go/Rust/Java decoding into the
 * schema, Python checking `isinstance(x, float)`) saw the feature's type
 * change from row to row. So answers write every number of a float feature
 * as float 64 (0xcb), rows stored by any version alike; anything else (a
 * string or bool stored before the feature's type changed, nil) as it is.
 * The registry has no float32 type (embeddings are float64s too), so float 32
 * (0xca) is never written.
 *
 * Values were located by `indexRowValues` (src/kv/row-index.ts): each is a
 * scalar or a one-level list of scalars, ending at `end`.
 */

/** Type bytes of the MessagePack integer formats (fixints, uint 8..64, int 8..64). */
const IS_INT = new Uint8Array(256);
for (let b = 0; b <= 0x7f; b++) IS_INT[b] = 1;
for (let b = 0xe0; b <= 0xff; b++) IS_INT[b] = 1;
for (let b = 0xcc; b <= 0xd3; b++) IS_INT[b] = 1;

const FLOAT64 = 0xcb;

/**
 * Does the stored value at [p, end) hold no integer-format number, so that
 * its bytes are already a float feature's answer? The common case (every
 * number stored as float 64): one type byte, or for a list one per element.
 */
export function storedFloatsExact(bytes: Uint8Array, view: DataView, p: number, end: number): boolean {
  const b = bytes[p]!;
  if (IS_INT[b] === 1) return false;
  const n = storedArrayLength(bytes, view, p);
  if (n < 0) return true;
  let q = storedArrayStart(bytes, p);
  while (q < end) {
    const e = bytes[q]!;
    if (e === FLOAT64) {
      q += 9;
      continue;
    }
    if (IS_INT[e] === 1) return false;
    q = afterStoredScalar(bytes, view, q);
    if (q < 0) return false;
  }
  return true;
}

/** Writes the stored value at [p, end) of a float feature with its integer-format numbers as float 64. */
export function storedMsgpackDouble(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number, end: number): void {
  const b = bytes[p]!;
  if (IS_INT[b] === 1) {
    asFloat64(w, bytes, view, p);
    return;
  }
  if (storedArrayLength(bytes, view, p) < 0) {
    w.copy(bytes, p, end);
    return;
  }
  // A list: its header, then runs of elements that need nothing copied at once, integers rewritten.
  let q = storedArrayStart(bytes, p);
  let run = p;
  while (q < end) {
    const e = bytes[q]!;
    if (e === FLOAT64) {
      q += 9;
      continue;
    }
    const next = afterStoredScalar(bytes, view, q);
    if (next < 0) break; // not after indexRowValues; the rest is copied as it is
    if (IS_INT[e] === 1) {
      if (q > run) w.copy(bytes, run, q);
      asFloat64(w, bytes, view, q);
      run = next;
    }
    q = next;
  }
  if (end > run) w.copy(bytes, run, end);
}

/** The integer at `p` as float 64 (a uint 64 / int 64 past 2^53 rounded to the nearest double, as Number() of it). */
function asFloat64(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number): void {
  w.u8(FLOAT64);
  w.f64(storedNumberOr0(bytes, view, p));
}
