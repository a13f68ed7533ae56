import type { StoredRow } from "./kv-node.ts";
import { RowValuesDecoder } from "./row-values-decoder.ts";
import { RowValuesEncoder } from "./row-values-encoder.ts";

/**
 * Byte layout of a stored row, shared by Redis shards and the embedded
 * store's durable log:
 *
 *   bytes 0..8   event timestamp, ms since epoch, IEEE-754 float64 big-endian
 *   bytes 8..    MessagePack array of the view's feature values in declaration order
 *
 * The fixed-width timestamp lets Redis' Lua compare event times without
 * decoding the values (`struct.unpack('>d', ...)`).
 */
export const ROW_HEADER_BYTES = 8;

const encoder = new RowValuesEncoder();
// The fast path for feature values, falling back to @msgpack/msgpack for anything else.
const decoder = new RowValuesDecoder();

/** Writes an event time's big-endian bytes without a DataView over the target (see encodeRow). */
const tsFloat = new Float64Array(1);
const tsBytes = new Uint8Array(tsFloat.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * `row` in the layout above, as a compact array: its `.buffer` is never read
 * here. JavaScriptCore keeps a small typed array's bytes inside the GC heap,
 * and reading `.buffer` moves them into a separately allocated ArrayBuffer
 * with an object of its own, which matters for arrays that are kept (the L1
 * cache holds these: src/cache/packed-row.ts). The values are encoded into
 * the encoder's own buffer and copied once.
 */
export function encodeRow(row: StoredRow): Uint8Array {
  const body = encoder.encodeSharedRef(row.values);
  const out = new Uint8Array(ROW_HEADER_BYTES + body.length);
  tsFloat[0] = row.ts;
  for (let i = 0; i < ROW_HEADER_BYTES; i++) out[i] = tsBytes[littleEndian ? ROW_HEADER_BYTES - 1 - i : i]!;
  out.set(body, ROW_HEADER_BYTES);
  return out;
}

export function decodeRow(bytes: Uint8Array): StoredRow {
  if (bytes.length < ROW_HEADER_BYTES) throw new Error(`stored row too short: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = decoder.decode(buf, view, ROW_HEADER_BYTES, bytes.byteLength);
  return { ts: view.getFloat64(0, false), values };
}

/** Event time of an encoded row, without decoding its values. */
export function rowTimestamp(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(0, false);
}
