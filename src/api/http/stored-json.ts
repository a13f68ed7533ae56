import type { ByteWriter } from "./byte-writer.ts";
import { COMMA, J_FALSE, J_NULL, J_TRUE, jsonNumber } from "./json-bytes.ts";

/**
 * One stored value — MessagePack bytes at `p`, already checked by
 * `indexRowValues` (src/kv/row-index.ts) — written as the JSON text
 * JSON.stringify gives for the value the row decoder would have produced:
 * numbers through the same `jsonNumber`, strings copied from their UTF-8 with
 * JSON.stringify's escapes, lists element by element. No value object, no
 * string. Returns the position after the value.
 */
export function storedJson(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number): number {
  const b = bytes[p]!;
  if (b <= 0x7f) {
    w.decimal(b);
    return p + 1;
  }
  if (b >= 0xe0) {
    jsonNumber(w, b - 0x100);
    return p + 1;
  }
  if (b >= 0xa0 && b <= 0xbf) return jsonStr(w, bytes, p + 1, b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return jsonList(w, bytes, view, p + 1, b & 0x0f);
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
    case 0xcb:
      jsonNumber(w, view.getFloat64(p + 1));
      return p + 9;
    case 0xcc:
      w.decimal(bytes[p + 1]!);
      return p + 2;
    case 0xcd:
      w.decimal(view.getUint16(p + 1));
      return p + 3;
    case 0xce:
      w.decimal(view.getUint32(p + 1));
      return p + 5;
    case 0xcf:
      jsonNumber(w, view.getUint32(p + 1) * 4294967296 + view.getUint32(p + 5));
      return p + 9;
    case 0xd0:
      jsonNumber(w, view.getInt8(p + 1));
      return p + 2;
    case 0xd1:
      jsonNumber(w, view.getInt16(p + 1));
      return p + 3;
    case 0xd2:
      jsonNumber(w, view.getInt32(p + 1));
      return p + 5;
    case 0xd3:
      jsonNumber(w, view.getInt32(p + 1) * 4294967296 + view.getUint32(p + 5));
      return p + 9;
    case 0xd9:
      return jsonStr(w, bytes, p + 2, bytes[p + 1]!);
    case 0xda:
      return jsonStr(w, bytes, p + 3, view.getUint16(p + 1));
    case 0xdb:
      return jsonStr(w, bytes, p + 5, view.getUint32(p + 1));
    case 0xdc:
      return jsonList(w, bytes, view, p + 3, view.getUint16(p + 1));
    case 0xdd:
      return jsonList(w, bytes, view, p + 5, view.getUint32(p + 1));
    default:
      // indexRowValues let nothing else through.
      throw new Error(`stored value type 0x${b.toString(16)} outside the checked shapes`);
  }
}

function jsonList(w: ByteWriter, bytes: Uint8Array, view: DataView, p: number, n: number): number {
  w.byte(0x5b);
  let q = p;
  for (let i = 0; i < n; i++) {
    if (i > 0) w.byte(COMMA);
    q = storedJson(w, bytes, view, q);
  }
  w.byte(0x5d);
  return q;
}

const HEX = "0123456789abcdef";

/**
 * UTF-8 string bytes as a JSON string: what JSON.stringify writes for the
 * decoded string, encoded as UTF-8. It escapes `"`, `\` and controls below
 * 0x20 (\b \t \n \f \r by name, others as \u00XX) and leaves every other
 * character as it is (lone surrogates, its only other escape, never get here:
 * indexRowValues refuses their 0xED bytes).
 */
function jsonStr(w: ByteWriter, bytes: Uint8Array, p: number, len: number): number {
  const end = p + len;
  w.byte(0x22);
  let run = p;
  for (let i = p; i < end; i++) {
    const c = bytes[i]!;
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
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
  if (end > run) w.copy(bytes, run, end);
  w.byte(0x22);
  return end;
}
