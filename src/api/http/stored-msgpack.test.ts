import { describe, expect, test } from "bun:test";
import { decode, encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { indexRowValues } from "../../kv/row-index.ts";
import { RowValuesDecoder } from "../../kv/row-values-decoder.ts";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { ByteWriter } from "./byte-writer.ts";
import { mpDouble } from "./msgpack-bytes.ts";
import { storedFloatsExact, storedMsgpackDouble } from "./stored-msgpack.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A stored row of `values` as the library encodes it (what rows hold: whole numbers as integers), indexed. */
function stored(values: FeatureValue[]) {
  const bytes = Buffer.from(encode(values, { useBigInt64: true }));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const offsets = new Int32Array(values.length + 1);
  expect(indexRowValues(bytes, view, 0, bytes.length, offsets)).toBe(values.length);
  return { bytes, view, offsets };
}

/** Each value of a stored row written as a float feature's: from the bytes, and from the decoded value (mpDouble). */
function both(values: FeatureValue[]): { fromBytes: string[]; fromValues: string[] } {
  const { bytes, view, offsets } = stored(values);
  const decoded = new RowValuesDecoder().decode(bytes, view, 0, bytes.length);
  const w = new ByteWriter(64);
  const fromBytes: string[] = [];
  const fromValues: string[] = [];
  for (let i = 0; i < values.length; i++) {
    w.reset();
    storedMsgpackDouble(w, bytes, view, offsets[i]!, offsets[i + 1]!);
    fromBytes.push(hex(w.written()));
    w.reset();
    mpDouble(w, decoded[i]);
    fromValues.push(hex(w.written()));
  }
  return { fromBytes, fromValues };
}

describe("a float feature's stored value in a MessagePack answer", () => {
  test("every integer format becomes float 64; float 64, nil, strings and bools are copied", () => {
    // A list mixing strings and numbers is no FeatureValue, but a row stored before a type change may hold one.
    const values = [2, -1, 200, 70_000, 2 ** 33, -100, -40_000, -(2 ** 33), 18446744073709551615n, 0.5, null, "x", true, [1, 0.5, 300, "s", -0.25, -3]] as unknown as FeatureValue[];
    const { fromBytes, fromValues } = both(values);
    expect(fromBytes).toEqual(fromValues);
    expect(fromBytes.slice(0, 3)).toEqual(["cb4000000000000000", "cbbff0000000000000", "cb4069000000000000"]);
    expect(fromBytes[10]).toBe("c0");
    expect(fromBytes[11]).toBe("a178");
    expect(fromBytes[12]).toBe("c3");
    // The list: its header, then every number a float 64 (the string element as it is).
    expect(decode(Buffer.from(fromBytes[13]!, "hex"))).toEqual([1, 0.5, 300, "s", -0.25, -3]);
    expect(fromBytes[13]).toBe("96cb3ff0000000000000cb3fe0000000000000cb4072c00000000000a173cbbfd0000000000000cbc008000000000000");
  });

  test("storedFloatsExact: true only when no number is stored as an integer", () => {
    const { bytes, view, offsets } = stored([0.5, 2, null, "s", [0.5, 1.5], [0.5, 1], [], ["a", 0.5]] as unknown as FeatureValue[]);
    const exact = Array.from({ length: 8 }, (_, i) => storedFloatsExact(bytes, view, offsets[i]!, offsets[i + 1]!));
    expect(exact).toEqual([true, false, true, true, true, false, true, true]);
  });

  test("from bytes equals from decoded values for any stored value (property)", () => {
    const scalar = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0, 127, 128, -32, -33, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 + 2, -(2 ** 60), 1e21), fc.string(), fc.boolean(), fc.constant(null));
    const value = fc.oneof(scalar, fc.array(fc.oneof(fc.double(), fc.integer(), fc.string()), { maxLength: 6 })) as fc.Arbitrary<FeatureValue>;
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 6 }), (values) => {
        const { fromBytes, fromValues } = both(values);
        expect(fromBytes).toEqual(fromValues);
      }),
      { numRuns: 300, seed: 20261207 },
    );
  });
});
