import { int64At, uint64At } from "./int64.ts";

/**
 * Reads of single MessagePack values inside a stored row, for answer writers
 * that transcode the stored bytes instead of decoding them (`KvNode.rawNow`).
 * The row was checked by `indexRowValues` (row-index.ts): every value is one
 * of the shapes FeatureValue allows, so these only tell those shapes apart.
 * Each reads in place and allocates nothing (but for an int64 outside the
 * safe range, which is a bigint). What a reader returns for a value
 * equals what RowValuesDecoder would have produced for it.
 */

/**
 * The number at `p` (any integer or float64 format, as the decoder reads it),
 * or 0 when the value there is not a number: how a typed number field writes
 * a value of another type (stored before its feature's type changed).
 */
export function storedNumberOr0(bytes: Uint8Array, view: DataView, p: number): number {
  const b = bytes[p]!;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xcb:
      return view.getFloat64(p + 1);
    case 0xcc:
      return bytes[p + 1]!;
    case 0xcd:
      return view.getUint16(p + 1);
    case 0xce:
      return view.getUint32(p + 1);
    case 0xcf:
      return view.getUint32(p + 1) * 4294967296 + view.getUint32(p + 5);
    case 0xd0:
      return view.getInt8(p + 1);
    case 0xd1:
      return view.getInt16(p + 1);
    case 0xd2:
      return view.getInt32(p + 1);
    case 0xd3:
      return view.getInt32(p + 1) * 4294967296 + view.getUint32(p + 5);
    default:
      return 0;
  }
}

/**
 * The int64 at `p` as the row decoder reads it (a bigint for an int 64 /
 * uint 64 outside the safe range), or 0 when the value there is not an
 * integer; a float64 (stored before the feature's type changed) is its number.
 * For typed int64 writers, which must not round a big value (storedNumberOr0 does).
 */
export function storedInt64Or0(bytes: Uint8Array, view: DataView, p: number): number | bigint {
  const b = bytes[p]!;
  if (b === 0xcf) return uint64At(view, p + 1);
  if (b === 0xd3) return int64At(view, p + 1);
  return storedNumberOr0(bytes, view, p);
}

/**
 * Writes the decimal digits of the int 64 / uint 64 at `p` (type byte 0xd3 /
 * 0xcf) with `ascii`; for values outside the safe range, which a number
 * would round.
 */
export function storedWideIntText(bytes: Uint8Array, view: DataView, p: number): string {
  return (bytes[p] === 0xcf ? view.getBigUint64(p + 1) : view.getBigInt64(p + 1)).toString();
}

/** Byte length of the string at `p`, or -1 when the value there is not a string. */
export function storedStringLength(bytes: Uint8Array, view: DataView, p: number): number {
  const b = bytes[p]!;
  if (b >= 0xa0 && b <= 0xbf) return b & 0x1f;
  if (b === 0xd9) return bytes[p + 1]!;
  if (b === 0xda) return view.getUint16(p + 1);
  if (b === 0xdb) return view.getUint32(p + 1);
  return -1;
}

/** Where the UTF-8 bytes of the string at `p` start (it is one: see storedStringLength). */
export function storedStringStart(bytes: Uint8Array, p: number): number {
  const b = bytes[p]!;
  return b <= 0xbf ? p + 1 : b === 0xd9 ? p + 2 : b === 0xda ? p + 3 : p + 5;
}

/** Element count of the array at `p`, or -1 when the value there is not an array. */
export function storedArrayLength(bytes: Uint8Array, view: DataView, p: number): number {
  const b = bytes[p]!;
  if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
  if (b === 0xdc) return view.getUint16(p + 1);
  if (b === 0xdd) return view.getUint32(p + 1);
  return -1;
}

/** Where the first element of the array at `p` starts (it is one: see storedArrayLength). */
export function storedArrayStart(bytes: Uint8Array, p: number): number {
  const b = bytes[p]!;
  return b <= 0x9f ? p + 1 : b === 0xdc ? p + 3 : p + 5;
}

/**
 * Bytes a stored scalar takes before any string content, by its type byte:
 * 1 for a fixint, nil or bool (the whole value), 2/3/5/9 for the integer and
 * float64 formats (type byte and payload), 1/2/3/5 for the string formats
 * (type byte and length); 0 for everything a stored row's scalar may not be
 * (lists, maps, binary, extensions, float32, 0xc1). One table for the
 * readers that skip values (row-index.ts) and the writers that transcode
 * them (stored-json.ts), so they agree on every format.
 */
export const SCALAR_HEAD = new Uint8Array(256);
for (let b = 0; b <= 0x7f; b++) SCALAR_HEAD[b] = 1;
for (let b = 0xe0; b <= 0xff; b++) SCALAR_HEAD[b] = 1;
for (let b = 0xa0; b <= 0xbf; b++) SCALAR_HEAD[b] = 1;
for (const [type, width] of [
  [0xc0, 1], [0xc2, 1], [0xc3, 1],
  [0xcb, 9], [0xcc, 2], [0xcd, 3], [0xce, 5], [0xcf, 9], [0xd0, 2], [0xd1, 3], [0xd2, 5], [0xd3, 9],
  [0xd9, 2], [0xda, 3], [0xdb, 5],
] as const) SCALAR_HEAD[type] = width;

/**
 * The position after the scalar at `p` (a number, string, bool or nil: an
 * element of a one-level list), or -1 for anything else.
 */
export function afterStoredScalar(bytes: Uint8Array, view: DataView, p: number): number {
  const len = storedStringLength(bytes, view, p);
  if (len >= 0) return storedStringStart(bytes, p) + len;
  const head = SCALAR_HEAD[bytes[p]!]!;
  return head === 0 ? -1 : p + head;
}
