/**
 * Reads of single MessagePack values inside a stored row, for answer writers
 * that transcode the stored bytes instead of decoding them (`KvNode.rawNow`).
 * The row was checked by `indexRowValues` (row-index.ts): every value is one
 * of the shapes FeatureValue allows, so these only tell those shapes apart.
 * Each reads in place and allocates nothing. What a reader returns for a value
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
 * The position after the scalar at `p` (a number, string, bool or nil: an
 * element of a one-level list), or -1 for anything else.
 */
export function afterStoredScalar(bytes: Uint8Array, view: DataView, p: number): number {
  const b = bytes[p]!;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return p + 1;
  switch (b) {
    case 0xcc:
    case 0xd0:
      return p + 2;
    case 0xcd:
    case 0xd1:
      return p + 3;
    case 0xce:
    case 0xd2:
      return p + 5;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return p + 9;
  }
  const len = storedStringLength(bytes, view, p);
  return len < 0 ? -1 : storedStringStart(bytes, p) + len;
}
