import type { FeatureValue } from "../../kv/kv-node.ts";
import { type LookupResult, STATUS_NAMES } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";

/**
 * Writes /v1/lookup's answer — `{"featureNames": [...], "rows": [{"values",
 * "statuses", "eventTimestamps"}, ...]}` — straight from the flat LookupResult
 * into bytes, in JSON or MessagePack. The same document `JSON.stringify` /
 * `@msgpack/msgpack` would produce from `nativeBody`, without building the
 * object tree (arrays and an object per row), the serialiser's string or
 * number strings for integers: constant parts are prepared bytes, integers
 * are written digit by digit, status names are prepared per status code.
 *
 * The bytes returned are a view of the encoder's buffer, valid until its next
 * call: hand them to `new Response` (which copies) before encoding again.
 * Measured with `npm run bench -- lookup-alloc` (bytes per lookup, in-process).
 */
export class NativeAnswerEncoder {
  private readonly out = new ByteWriter();

  json(result: LookupResult, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    w.bytes(J_OPEN_NAMES);
    const refs = result.refs;
    const nf = refs.length;
    for (let c = 0; c < nf; c++) {
      if (c > 0) w.byte(COMMA);
      const f = refs[c]!.feature;
      jsonString(w, full ? f.fullName : f.name);
    }
    w.bytes(J_ROWS);
    const { values, statuses, timestamps } = result;
    for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) {
      w.bytes(r === 0 ? J_ROW_FIRST : J_ROW_NEXT);
      for (let c = 0; c < nf; c++) {
        if (c > 0) w.byte(COMMA);
        jsonValue(w, values[base + c]);
      }
      w.bytes(J_STATUSES);
      for (let c = 0; c < nf; c++) {
        if (c > 0) w.byte(COMMA);
        w.bytes(J_STATUS[statuses[base + c]!]!);
      }
      w.bytes(J_TIMESTAMPS);
      for (let c = 0; c < nf; c++) {
        if (c > 0) w.byte(COMMA);
        jsonNumber(w, timestamps[base + c]!);
      }
      w.bytes(J_ROW_CLOSE);
    }
    if (result.degraded.length > 0) {
      // Only when some shard could not answer: the healthy answer keeps its shape.
      w.bytes(J_DEGRADED);
      result.degraded.forEach((id, i) => {
        if (i > 0) w.byte(COMMA);
        jsonString(w, id);
      });
    }
    w.bytes(J_CLOSE);
    return w.written();
  }

  msgpack(result: LookupResult, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    const degraded = result.degraded;
    w.bytes(degraded.length > 0 ? M_OPEN_NAMES_DEGRADED : M_OPEN_NAMES);
    const refs = result.refs;
    const nf = refs.length;
    mpArrayHeader(w, nf);
    for (let c = 0; c < nf; c++) {
      const f = refs[c]!.feature;
      mpString(w, full ? f.fullName : f.name);
    }
    w.bytes(M_ROWS);
    mpArrayHeader(w, result.rowCount);
    const { values, statuses, timestamps } = result;
    for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) {
      w.bytes(M_ROW_VALUES);
      mpArrayHeader(w, nf);
      for (let c = 0; c < nf; c++) mpValue(w, values[base + c]);
      w.bytes(M_STATUSES);
      mpArrayHeader(w, nf);
      for (let c = 0; c < nf; c++) w.bytes(M_STATUS[statuses[base + c]!]!);
      w.bytes(M_TIMESTAMPS);
      mpArrayHeader(w, nf);
      for (let c = 0; c < nf; c++) mpNumber(w, timestamps[base + c]!);
    }
    if (degraded.length > 0) {
      w.bytes(M_DEGRADED);
      mpArrayHeader(w, degraded.length);
      for (const id of degraded) mpString(w, id);
    }
    return w.written();
  }
}

const COMMA = 0x2c;
const ascii = (s: string) => new TextEncoder().encode(s);

const J_OPEN_NAMES = ascii('{"featureNames":[');
const J_ROWS = ascii('],"rows":[');
const J_ROW_FIRST = ascii('{"values":[');
const J_ROW_NEXT = ascii(',{"values":[');
const J_STATUSES = ascii('],"statuses":[');
const J_TIMESTAMPS = ascii('],"eventTimestamps":[');
const J_ROW_CLOSE = ascii("]}");
const J_CLOSE = ascii("]}");
const J_DEGRADED = ascii('],"degraded":[');
const J_STATUS = STATUS_NAMES.map((n) => ascii(JSON.stringify(n)));
const J_TRUE = ascii("true");
const J_FALSE = ascii("false");
const J_NULL = ascii("null");

/** Fixed-map and key bytes, as @msgpack/msgpack writes them. */
function mpKey(s: string): number[] {
  return [0xa0 | s.length, ...ascii(s)];
}
const M_OPEN_NAMES = new Uint8Array([0x82, ...mpKey("featureNames")]);
const M_ROWS = new Uint8Array(mpKey("rows"));
/** The answer's map with a third key, `degraded`, after `rows`. */
const M_OPEN_NAMES_DEGRADED = new Uint8Array([0x83, ...mpKey("featureNames")]);
const M_DEGRADED = new Uint8Array(mpKey("degraded"));
const M_ROW_VALUES = new Uint8Array([0x83, ...mpKey("values")]);
const M_STATUSES = new Uint8Array(mpKey("statuses"));
const M_TIMESTAMPS = new Uint8Array(mpKey("eventTimestamps"));
const M_STATUS = STATUS_NAMES.map((n) => new Uint8Array(mpKey(n)));

const TWO_32 = 4294967296;

function jsonNumber(w: ByteWriter, v: number): void {
  if (Number.isSafeInteger(v)) {
    if (v < 0) {
      w.byte(0x2d);
      w.decimal(-v);
    } else w.decimal(v);
  } else if (Number.isFinite(v)) w.ascii(String(v));
  else w.bytes(J_NULL); // as JSON.stringify: NaN and ±Infinity are null
}

/** Printable ASCII without `"` or `\` is written as is; anything else as JSON.stringify spells it. */
function jsonString(w: ByteWriter, s: string): void {
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

function jsonValue(w: ByteWriter, v: FeatureValue | undefined): void {
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
      if (v !== null) {
        w.byte(0x5b);
        for (let i = 0; i < v.length; i++) {
          if (i > 0) w.byte(COMMA);
          jsonValue(w, v[i] ?? null);
        }
        w.byte(0x5d);
        return;
      }
  }
  w.bytes(J_NULL);
}

function mpArrayHeader(w: ByteWriter, n: number): void {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) {
    w.u8(0xdc);
    w.u16(n);
  } else {
    w.u8(0xdd);
    w.u32(n);
  }
}

/** Integers in their smallest MessagePack form, other numbers as float64 (as @msgpack/msgpack does). */
function mpNumber(w: ByteWriter, v: number): void {
  if (!Number.isSafeInteger(v)) {
    w.u8(0xcb);
    w.f64(v);
  } else if (v >= 0) {
    if (v < 0x80) w.u8(v);
    else if (v < 0x100) {
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

function mpString(w: ByteWriter, s: string): void {
  const n = s.length;
  let isAscii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      isAscii = false;
      break;
    }
  }
  if (isAscii) {
    mpStrHeader(w, n);
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

function mpValue(w: ByteWriter, v: FeatureValue | undefined): void {
  switch (typeof v) {
    case "number":
      mpNumber(w, v);
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
