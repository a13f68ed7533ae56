import type { StoredRow } from "../kv/kv-node.ts";
import { ROW_HEADER_BYTES } from "../kv/row-codec.ts";
import { RowValuesDecoder } from "../kv/row-values-decoder.ts";

/**
 * Reading L1's rows. L1 keeps each row as `encodeRow` makes it: a compact
 * Uint8Array whose `.buffer` is never read. Reading `.buffer` of a small
 * typed array (to wrap it in a Buffer or a DataView) moves JavaScriptCore's
 * in-heap storage into a separately allocated ArrayBuffer with an object of
 * its own. Measured 12-05 with 220,000 rows of 150 bytes: RSS +66 MB and heap
 * +53 MB as plain arrays, +178 MB and +94 MB each wrapped in a Buffer and a
 * DataView; a 100 MB L1 of the wrapped kind, churned, grew RSS by 393 MB. So
 * a row is read by copying it into a scratch buffer that has its DataView:
 * ~150 bytes copied per row read.
 */

/**
 * A reusable buffer with its DataView, into which packed rows are copied to
 * be read: by the answer writers (a raw read reports each row at its place
 * here) or by the decoder. `reset` starts over; rows copied since the last
 * reset stay where they are until the next one (the buffer grows by
 * replacing itself, leaving earlier rows in the old one).
 */
export class RowScratch {
  bytes = Buffer.alloc(4096);
  view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  private pos = 0;

  reset(): void {
    this.pos = 0;
  }

  /** Copies `packed` in; answers where it starts in `bytes` (read `bytes`/`view` after the call: it may have grown). */
  put(packed: Uint8Array): number {
    const n = packed.length;
    if (this.pos + n > this.bytes.length) {
      let size = this.bytes.length * 2;
      while (size < n) size *= 2;
      this.bytes = Buffer.alloc(size);
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
      this.pos = 0;
    }
    const at = this.pos;
    this.bytes.set(packed, at);
    this.pos = at + n;
    return at;
  }
}

const decodeScratch = new RowScratch();
const decoder = new RowValuesDecoder();

/**
 * A packed row's values as value objects (a copy: strings and arrays are new).
 * Feature values hold no binary, the one MessagePack type a decoder could hand
 * back as a view into its input (the scratch, overwritten by the next call).
 */
export function unpackValues(packed: Uint8Array): StoredRow["values"] {
  decodeScratch.reset();
  const at = decodeScratch.put(packed);
  return decoder.decode(decodeScratch.bytes, decodeScratch.view, at + ROW_HEADER_BYTES, at + packed.length);
}
