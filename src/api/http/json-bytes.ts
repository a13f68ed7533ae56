import type { ByteWriter } from "./byte-writer.ts";

/**
 * JSON written into a ByteWriter with the same text JSON.stringify produces
 * for the same value, without building that string: integers digit by digit,
 * printable-ASCII strings copied, everything else spelled by JSON.stringify.
 */

const ascii = (s: string) => new TextEncoder().encode(s);
export const J_TRUE = ascii("true");
export const J_FALSE = ascii("false");
export const J_NULL = ascii("null");
export const COMMA = 0x2c;

export function jsonNumber(w: ByteWriter, v: number): void {
  if (Number.isSafeInteger(v)) {
    if (v < 0) {
      w.byte(0x2d);
      w.decimal(-v);
    } else w.decimal(v);
  } else if (Number.isFinite(v)) w.ascii(String(v));
  else w.bytes(J_NULL); // as JSON.stringify: NaN and ±Infinity are null
}

/** Printable ASCII without `"` or `\` is written as is; anything else as JSON.stringify spells it. */
export function jsonString(w: ByteWriter, s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) {
      w.utf8String(JSON.stringify(s));
      return;
    }
  }
  w.byte(0x22);
  w.ascii(s);
  w.byte(0x22);
}

/** Any value a feature or an echoed join key can hold; undefined is null (as inside arrays). */
export function jsonValue(w: ByteWriter, v: unknown): void {
  switch (typeof v) {
    case "number":
      jsonNumber(w, v);
      return;
    case "string":
      jsonString(w, v);
      return;
    case "boolean":
      w.bytes(v ? J_TRUE : J_FALSE);
      return;
    case "object":
      if (Array.isArray(v)) {
        w.byte(0x5b);
        for (let i = 0; i < v.length; i++) {
          if (i > 0) w.byte(COMMA);
          jsonValue(w, v[i]);
        }
        w.byte(0x5d);
        return;
      }
      if (v !== null) {
        // Not a feature value (an object echoed from a request): rare, so spelled by JSON.stringify.
        w.utf8String(JSON.stringify(v));
        return;
      }
  }
  w.bytes(J_NULL);
}

