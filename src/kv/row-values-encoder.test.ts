import { describe, expect, test } from "bun:test";
import { encode } from "@msgpack/msgpack";
import type { FeatureValue } from "./kv-node.ts";
import { decodeRow, encodeRow, ROW_HEADER_BYTES } from "./row-codec.ts";
import { RowValuesEncoder } from "./row-values-encoder.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("RowValuesEncoder", () => {
  const enc = new RowValuesEncoder();

  test("writes -0 as float 64 -0 (the library writes the integer 0), in rows and lists, with and without a bigint", () => {
    expect(hex(enc.encodeSharedRef([-0]))).toBe("91cb8000000000000000");
    expect(hex(enc.encodeSharedRef([[1, -0]]))).toBe("919201cb8000000000000000");
    // A row holding a bigint goes through the wide encoder: it keeps -0 too.
    expect(hex(enc.encodeSharedRef([9007199254740993n, -0]))).toBe("92cf0020000000000001cb8000000000000000");
    expect(hex(enc.encode({ a: -0 }))).toBe("81a161cb8000000000000000");
  });

  test("every other value is written as the library writes it (0 stays the fixint 0, 2.0 the fixint 2)", () => {
    const values: FeatureValue[] = [0, 2, -1, 0.5, 2 ** 40, -(2 ** 40), 1e21, "Porto", true, null, [1, 2.5], ["a"]];
    expect(hex(enc.encodeSharedRef(values))).toBe(hex(encode(values)));
  });

  test("a stored -0 reads back as -0", () => {
    const back = decodeRow(encodeRow({ ts: 5, values: [-0, [0.5, -0], 0] }));
    expect(Object.is(back.values[0], -0)).toBe(true);
    expect(Object.is((back.values[1] as number[])[1], -0)).toBe(true);
    expect(Object.is(back.values[2], 0)).toBe(true);
    expect(hex(encodeRow({ ts: 5, values: [-0] }).subarray(ROW_HEADER_BYTES))).toBe("91cb8000000000000000");
  });
});
