import { SCALAR_HEAD, storedStringLength } from "./stored-value.ts";

/**
 * Where each value of a stored row sits, without decoding it: for answers
 * written straight from the stored MessagePack (`KvNode.rawNow`). Fills
 * `offsets[base + i]` with the start of value i and `offsets[base + count]`
 * with the end (at most `room` slots),
 * and answers the count, or -1 when the row holds anything outside the shapes
 * FeatureValue allows and the library's own encoding of them: maps, binary,
 * extensions, float32, arrays nested deeper than one level, and strings that
 * may hold a lone surrogate (@msgpack/msgpack writes those as raw 0xED
 * sequences, which only its decoder restores). The caller then takes the
 * decoding path, whose answer is always the library's.
 */
export function indexRowValues(bytes: Uint8Array, view: DataView, start: number, end: number, offsets: Int32Array, base = 0, room = offsets.length - base): number {
  let p = rowValuesStart(bytes, start, end);
  if (p < 0) return -1;
  const n = rowValueCount(bytes, view, start);
  if (n + 1 > room) return -1;
  for (let i = 0; i < n; i++) {
    offsets[base + i] = p;
    if (p >= end) return -1;
    const b = bytes[p]!;
    // A row's values nest one level (row → list or embedding): a list's elements are scalars, deeper is left to the decoder.
    if (b >= 0x90 && b <= 0x9f) p = skipList(bytes, view, p + 1, b & 0x0f, end);
    else if (b === 0xdc) p = p + 3 <= end ? skipList(bytes, view, p + 3, view.getUint16(p + 1), end) : -1;
    else if (b === 0xdd) p = p + 5 <= end ? skipList(bytes, view, p + 5, view.getUint32(p + 1), end) : -1;
    else p = skipScalar(bytes, view, p, end);
    if (p < 0) return -1;
  }
  offsets[base + n] = p;
  return p === end ? n : -1;
}

/** Where a stored row's first value starts: after its array header, or -1 when [start, end) does not open with one. */
export function rowValuesStart(bytes: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1;
  const head = bytes[start]!;
  if (head >= 0x90 && head <= 0x9f) return start + 1;
  if (head === 0xdc) return start + 3 <= end ? start + 3 : -1;
  if (head === 0xdd) return start + 5 <= end ? start + 5 : -1;
  return -1;
}

/** How many values a stored row holds (its header was checked by rowValuesStart). */
export function rowValueCount(bytes: Uint8Array, view: DataView, start: number): number {
  const head = bytes[start]!;
  return head <= 0x9f ? head & 0x0f : head === 0xdc ? view.getUint16(start + 1) : view.getUint32(start + 1);
}

/** The position after the scalar (nil, bool, number, string) at `p`, or -1 (a list, an unsupported type, or truncated). */
function skipScalar(bytes: Uint8Array, view: DataView, p: number, end: number): number {
  if (p >= end) return -1;
  const head = SCALAR_HEAD[bytes[p]!]!;
  if (head === 0 || p + head > end) return -1;
  const len = storedStringLength(bytes, view, p);
  return len < 0 ? p + head : skipString(bytes, p + head, len, end);
}

function skipString(bytes: Uint8Array, p: number, len: number, end: number): number {
  const stop = p + len;
  if (stop > end) return -1;
  for (let i = p; i < stop; i++) {
    if (bytes[i]! < 0x80) continue;
    const next = utf8SequenceEnd(bytes, i, stop);
    if (next < 0) return -1;
    i = next - 1;
  }
  return stop;
}

/**
 * Where the multi-byte UTF-8 sequence whose lead byte is at `p` ends, or -1
 * when it is not well-formed UTF-8 (a stray continuation byte, an overlong
 * form, past U+10FFFF, cut short by `stop`) or starts with 0xED. Stored bytes
 * are copied into answers as they are only when they are what re-encoding
 * the decoded string would give: the row decoder reads malformed UTF-8 as
 * U+FFFD, and @msgpack/msgpack writes a lone surrogate as raw 0xED bytes that
 * only its decoder restores; such strings take the decoding path. (0xED also
 * leads U+D000–U+D7FF, which are declined with them: rare, and still answered.)
 */
export function utf8SequenceEnd(bytes: Uint8Array, p: number, stop: number): number {
  const c = bytes[p]!;
  let n: number;
  let min = 0x80;
  let max = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 1;
  else if (c >= 0xe0 && c <= 0xef) {
    if (c === 0xed) return -1;
    n = 2;
    if (c === 0xe0) min = 0xa0;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 3;
    if (c === 0xf0) min = 0x90;
    else if (c === 0xf4) max = 0x8f;
  } else return -1;
  // The sequence is bytes p .. p + n.
  if (p + n >= stop) return -1;
  const b1 = bytes[p + 1]!;
  if (b1 < min || b1 > max) return -1;
  for (let k = 2; k <= n; k++) {
    const b = bytes[p + k]!;
    if (b < 0x80 || b > 0xbf) return -1;
  }
  return p + n + 1;
}

/** The position after a list's `n` scalar elements starting at `p`, or -1. */
function skipList(bytes: Uint8Array, view: DataView, p: number, n: number, end: number): number {
  if (n > end - p) return -1;
  let q = p;
  for (let i = 0; i < n && q >= 0; i++) q = skipScalar(bytes, view, q, end);
  return q;
}
