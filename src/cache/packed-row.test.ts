import { describe, expect, test } from "bun:test";
import type { StoredRow } from "../kv/kv-node.ts";
import { encode } from "@msgpack/msgpack";
import { decodeRow, encodeRow } from "../kv/row-codec.ts";
import { RowScratch, unpackValues } from "./packed-row.ts";

const rows: StoredRow[] = [
  { ts: 1_700_000_000_123, values: [0.25, 12, true, "Porto", [1, 2, 3], [4.5, 4.75], null] },
  { ts: -1.5, values: [] },
  { ts: 0, values: ["héllo ; = /", -7, 2 ** 40, [false, true], ["a", "b"]] },
];

describe("packed L1 rows", () => {
  test("are the row codec's layout byte for byte (event time big-endian, then the values), and unpack to the same values", () => {
    for (const row of rows) {
      const packed = encodeRow(row);
      const expected = Buffer.alloc(8);
      expected.writeDoubleBE(row.ts, 0);
      expect(Buffer.from(packed).equals(Buffer.concat([expected, Buffer.from(encode(row.values, { ignoreUndefined: true }))]))).toBe(true);
      expect(decodeRow(packed)).toEqual(row);
      expect(unpackValues(packed)).toEqual(row.values);
    }
  });

  test("a scratch keeps each row copied since the last reset where it was put, growing past its size", () => {
    const scratch = new RowScratch();
    const packed = encodeRow({ ts: 5, values: ["x".repeat(3000)] });
    const seen: { bytes: Buffer; at: number }[] = [];
    for (let i = 0; i < 4; i++) {
      const at = scratch.put(packed);
      seen.push({ bytes: scratch.bytes, at });
    }
    // 4 × ~3 KB in a 4 KB start: it grew, and every row reads back whole from where it was reported.
    for (const { bytes, at } of seen) expect(Buffer.from(bytes.subarray(at, at + packed.length)).equals(Buffer.from(packed))).toBe(true);
    expect(scratch.view.byteLength).toBe(scratch.bytes.byteLength);
    scratch.reset();
    expect(scratch.put(packed)).toBe(0);
  });
});
