import type { ByteWriter } from "./byte-writer.ts";
import { utf8SequenceEnd } from "../../kv/row-index.ts";
import { SCALAR_HEAD, storedNumberOr0, storedStringLength, storedWideIntText } from "../../kv/stored-value.ts";
import { COMMA, J_FALSE, J_NULL, J_TRUE, jsonDoubleNumber, jsonNumber, jsonSafeInteger, POINT_ZERO, wholeInDecimal } from "./json-bytes.ts";

/**
 * One stored value — MessagePack bytes at `p`, ending by `end` — written as
 * the JSON text JSON.stringify gives for the value the row decoder would have
 * produced (a big int64, a bigint there, as its exact digits): numbers as `jsonNumber` writes them, strings copied from their
 * UTF-8 with JSON.stringify's escapes, lists element by element. No value
 * object, no string. Returns the position after the value, or -1 (having
 * written part of it) for bytes outside the shapes `indexRowValues`
 * (src/kv/row-index.ts) lets through: so a row can be transcoded in one pass,
 * unchecked, and a value located by that index is written the same way.
 * `double`: the value is a float64 (or a list of them), so a whole number is
 * written as a float, `5.0`, and -0 as `-0.0` (see `jsonDouble`); stored
 * MessagePack keeps 5.0 as the integer 5, so only the type can tell.
 */
export function storedJson(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number, end: number, double = false): number {
  if (p >= end) return -1;
  const b = bytes[p]!;
  if (b <= 0x7f) {
    w.decimal(b);
    if (double) w.bytes(POINT_ZERO);
    return p + 1;
  }
  if (b >= 0xe0) {
    jsonNumber(w, b - 0x100);
    if (double) w.bytes(POINT_ZERO);
    return p + 1;
  }
  if (b >= 0xa0 && b <= 0xbf) return jsonStr(w, bytes, p + 1, b & 0x1f, end);
  if (b >= 0x90 && b <= 0x9f) return jsonList(w, bytes, view, p + 1, b & 0x0f, end, double);
  switch (b) {
    case 0xc0:
      w.bytes(J_NULL);
      return p + 1;
    case 0xc2:
      w.bytes(J_FALSE);
      return p + 1;
    case 0xc3:
      w.bytes(J_TRUE);
      return p + 1;
  }
  if (b === 0xdc) return p + 3 <= end ? jsonList(w, bytes, view, p + 3, view.getUint16(p + 1), end, double) : -1;
  if (b === 0xdd) return p + 5 <= end ? jsonList(w, bytes, view, p + 5, view.getUint32(p + 1), end, double) : -1;
  // The rest carry a length or a payload after the type byte: first check they fit.
  const head = SCALAR_HEAD[b]!;
  if (head === 0 || p + head > end) return -1;
  const len = storedStringLength(bytes, view, p);
  if (len >= 0) return jsonStr(w, bytes, p + head, len, end);
  const n = storedNumberOr0(bytes, view, p);
  if (b === 0xcb) {
    // A float 64: for a float feature `5.0` and `-0.0` (jsonDoubleNumber), else as JSON.stringify.
    if (double) jsonDoubleNumber(w, n);
    else jsonNumber(w, n);
    return p + head;
  }
  if (Number.isSafeInteger(n)) jsonSafeInteger(w, n);
  // An int 64 / uint 64 outside the safe range (a big int64): its exact digits, which `n` has rounded.
  else w.ascii(storedWideIntText(bytes, view, p));
  if (double && wholeInDecimal(n)) w.bytes(POINT_ZERO);
  return p + head;
}

/** A list's `n` elements, each a scalar (a row's values nest one level; deeper is refused, as indexRowValues does). */
function jsonList(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number, n: number, end: number, double: boolean): number {
  if (n > end - p) return -1;
  w.byte(0x5b);
  let q = p;
  for (let i = 0; i < n; i++) {
    if (i > 0) w.byte(COMMA);
    if (q >= end) return -1;
    const e = bytes[q]!;
    if ((e >= 0x90 && e <= 0x9f) || e === 0xdc || e === 0xdd) return -1;
    q = storedJson(w, bytes, view, q, end, double);
    if (q < 0) return -1;
  }
  w.byte(0x5d);
  return q;
}

const HEX = "0123456789abcdef";

/**
 * UTF-8 string bytes as a JSON string: what JSON.stringify writes for the
 * decoded string, encoded as UTF-8. It escapes `"`, `\` and controls below
 * 0x20 (\b \t \n \f \r by name, others as \u00XX) and leaves every other
 * character as it is. Bytes that are not well-formed UTF-8, and 0xED (how
 * a lone surrogate, its only other escape, is stored), are refused (-1), as
 * indexRowValues refuses them (utf8SequenceEnd).
 */
function jsonStr(w: ByteWriter, bytes: Uint8Array, p: number, len: number, end: number): number {
  const stop = p + len;
  if (stop > end) return -1;
  w.byte(0x22);
  let run = p;
  for (let i = p; i < stop; i++) {
    const c = bytes[i]!;
    if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) continue;
    if (c >= 0x80) {
      // Copied as it is when well-formed (see utf8SequenceEnd); anything else declines.
      const next = utf8SequenceEnd(bytes, i, stop);
      if (next < 0) return -1;
      i = next - 1;
      continue;
    }
    if (i > run) w.copy(bytes, run, i);
    run = i + 1;
    w.byte(0x5c);
    switch (c) {
      case 0x22:
      case 0x5c:
        w.byte(c);
        break;
      case 0x08:
        w.byte(0x62);
        break;
      case 0x09:
        w.byte(0x74);
        break;
      case 0x0a:
        w.byte(0x6e);
        break;
      case 0x0c:
        w.byte(0x66);
        break;
      case 0x0d:
        w.byte(0x72);
        break;
      default:
        w.ascii(`u00${HEX[c >> 4]}${HEX[c & 15]}`);
    }
  }
  if (stop > run) w.copy(bytes, run, stop);
  w.byte(0x22);
  return stop;
}
