import { describe, expect, test } from "bun:test";
import { decode } from "@msgpack/msgpack";
import fc from "fast-check";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { RowValuesEncoder } from "../../kv/row-values-encoder.ts";
import type { FeatureRef } from "../../registry/index.ts";
import type { LookupResult } from "../../serving/index.ts";
import { nativeBody } from "./encode-result.ts";
import { NativeAnswerEncoder } from "./native-answer.ts";

function ref(name: string, floats = false): FeatureRef {
  return { view: {}, feature: { name, fullName: `v__${name}`, floats } } as unknown as FeatureRef;
}

function result(names: string[], rows: FeatureValue[][], statuses: number[], timestamps: number[], floats: boolean[] = []): LookupResult {
  return {
    refs: names.map((n, c) => ref(n, floats[c] === true)),
    rowCount: rows.length,
    values: rows.flat(1),
    statuses: Uint8Array.from(statuses),
    timestamps: Float64Array.from(timestamps),
    degraded: [],
    stale: undefined,
  };
}

const reference = (r: LookupResult, full: boolean) => nativeBody(r, full);
/** The library's encoding (ignoreUndefined), but -0 as float64 -0, as stored rows and answers write it. */
const rowEncoder = new RowValuesEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("NativeAnswerEncoder", () => {
  const enc = new NativeAnswerEncoder();

  test("writes the same JSON and MessagePack bytes as serialising nativeBody, for every value kind", () => {
    const r = result(
      ["i", "f", "s", "b", "n", "ai", "af", "as", "ab", "neg"],
      [
        [0, 0.1, "Porto", true, null, [1, 2, 3], [0.5, -1.25e-7], ["a", "b"], [true, false], -1],
        [2 ** 53 + 2, Number.NaN, 'quote " back \\ nl \n tab \t é 😀 \u0001', false, null, [], [Number.POSITIVE_INFINITY], [], [], -(2 ** 40)],
        [-0, 1e21, "", true, null, [127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32], [-32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1], ["x".repeat(40)], [true], 1.5],
      ],
      [1, 2, 3, 4, 5, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
      [1_700_000_000_123, 0, 1, 2 ** 32, 2 ** 32 - 1, 255, 65536, 0.5, 9e15, 7, ...new Array(20).fill(1_700_000_000_000)],
    );
    for (const full of [false, true]) {
      expect(text(enc.json(r, full))).toBe(JSON.stringify(reference(r, full)));
      expect(Buffer.from(enc.msgpack(r, full)).equals(Buffer.from(rowEncoder.encode(reference(r, full))))).toBe(true);
    }
  });

  test("rows whose features share one status, at the prepared widths' edge and beyond it, read as the serialiser writes them", () => {
    for (const width of [1, 63, 64, 65, 70]) {
      const names = Array.from({ length: width }, (_, c) => `f${c}`);
      for (const status of [1, 3, 5]) {
        const r = result(names, [names.map((_, c) => c), names.map(() => null)], new Array(2 * width).fill(status), new Array(2 * width).fill(1_700_000_000_000));
        expect(text(enc.json(r, false))).toBe(JSON.stringify(reference(r, false)));
      }
    }
  });

  test("names prepared for one feature list are kept per variant: short and full, JSON and MessagePack, in any order", () => {
    const r = result(["x", "y"], [[1, "a"]], [1, 1], [5, 5]);
    const again = { ...r, values: [2, "b"] };
    for (const [full, asMsgpack] of [[false, false], [true, true], [true, false], [false, true], [false, false], [true, true]] as const) {
      for (const x of [r, again]) {
        if (asMsgpack) expect(Buffer.from(enc.msgpack(x, full)).equals(Buffer.from(rowEncoder.encode(reference(x, full))))).toBe(true);
        else expect(text(enc.json(x, full))).toBe(JSON.stringify(reference(x, full)));
      }
    }
  });

  test("an empty result and a batch larger than the initial buffer", () => {
    const empty = result(["a"], [], [], []);
    expect(text(enc.json(empty, false))).toBe(JSON.stringify(reference(empty, false)));
    const rows = Array.from({ length: 3000 }, (_, i): FeatureValue[] => [i, `city-${i}`, [i / 7, i * 3]]);
    const big = result(["a", "b", "c"], rows, new Array(9000).fill(1), new Array(9000).fill(1_700_000_000_000));
    expect(text(enc.json(big, false))).toBe(JSON.stringify(reference(big, false)));
    expect(Buffer.from(enc.msgpack(big, true)).equals(Buffer.from(rowEncoder.encode(reference(big, true))))).toBe(true);
    // The writer is reused: a small answer after a big one is still exact.
    expect(text(enc.json(empty, false))).toBe(JSON.stringify(reference(empty, false)));
  });

  test("a Response copies the encoder's view at construction, so the next answer cannot change it", async () => {
    const a = result(["a"], [["first"]], [1], [1]);
    const b = result(["a"], [["SECOND!"]], [1], [2]);
    const res = new Response(enc.json(a, false));
    enc.json(b, false);
    expect(await res.text()).toBe(JSON.stringify(reference(a, false)));
  });

  test("a float feature's numbers are floats: MessagePack float 64 (2.0, -0.0 too), JSON 2.0 and -0.0; other features as the serialiser writes them", () => {
    const r = result(
      ["f", "fl", "i", "s"],
      [
        [2, [1, 0.5, -0], 2, "x"],
        [-0, [], 0, "y"],
        [null, null, null, null],
        [9007199254740993n, [2 ** 60], 9007199254740993n, "z"],
      ],
      new Array(16).fill(1),
      new Array(16).fill(5),
      [true, true, false, false],
    );
    const decoded = decode(enc.msgpack(r, false)) as { rows: { values: unknown[] }[] };
    const mp = Buffer.from(enc.msgpack(r, false)).toString("hex");
    // Row 0: float 64 2.0, [1.0, 0.5, -0.0] as three float 64s, the int64 2 a fixint.
    expect(mp).toContain(`a6${Buffer.from("values").toString("hex")}94cb4000000000000000` + "93cb3ff0000000000000cb3fe0000000000000cb8000000000000000" + "02a178");
    // Row 1: a float -0 keeps its sign (an int64 never holds -0: canonicalFor makes it 0, the fixint 0).
    expect(mp).toContain("94cb800000000000000090" + "00a179");
    expect(Object.is(decoded.rows[1]!.values[0], -0)).toBe(true);
    expect(decoded.rows[3]!.values).toEqual([9007199254740992, [2 ** 60], 9007199254740993n, "z"].map((v) => (typeof v === "bigint" ? Number(v) : v)));
    const json = text(enc.json(r, false));
    expect([...json.matchAll(/"values":\[(.*?)\],"statuses"/g)].map((m) => m[1])).toEqual([
      '2.0,[1.0,0.5,-0.0],2,"x"',
      '-0.0,[],0,"y"',
      "null,null,null,null",
      '9007199254740993.0,[1152921504606847000.0],9007199254740993,"z"',
    ]);
  });

  test("rows with stale values carry their per-value flags, in JSON and MessagePack, as the serialiser writes nativeBody's", () => {
    const r = { ...result(["a", "b"], [[1, "x"], [null, "y"]], [1, 1, 2, 1], [5, 5, 0, 7]), stale: Uint8Array.from([0, 1, 1, 0]) };
    const degraded = { ...r, degraded: ["shard-b"] };
    for (const x of [r, degraded]) {
      for (const full of [false, true]) {
        expect(text(enc.json(x, full))).toBe(JSON.stringify(reference(x, full)));
        expect(Buffer.from(enc.msgpack(x, full)).equals(Buffer.from(rowEncoder.encode(reference(x, full))))).toBe(true);
      }
    }
    expect(text(enc.json(r, false))).toContain('"eventTimestamps":[5,5],"stale":[false,true]}');
  });

  test("an event time of -0 (pushed as -0.0, floored to -0) is the integer 0 in MessagePack, not float 64 -0", () => {
    const r = result(["a", "b"], [[1, 2]], [1, 1], [-0, 5]);
    const mp = Buffer.from(enc.msgpack(r, false)).toString("hex");
    expect(mp.endsWith(`${Buffer.from("eventTimestamps").toString("hex")}920005`)).toBe(true);
    expect(text(enc.json(r, false))).toContain('"eventTimestamps":[0,5]');
  });

  test("matches the reference for arbitrary values (property)", () => {
    const value = fc.oneof(
      fc.double(),
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
      fc.string({ unit: "binary" }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.double(), { maxLength: 5 }),
      fc.array(fc.string(), { maxLength: 5 }),
      fc.array(fc.boolean(), { maxLength: 3 }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(value, { minLength: 2, maxLength: 2 }), { maxLength: 6 }), fc.double({ min: 0, max: 4e12, noNaN: true }), (rows, ts) => {
        const n = rows.length * 2;
        const r = result(["a", "b"], rows as FeatureValue[][], new Array(n).fill(1), new Array(n).fill(ts));
        expect(text(enc.json(r, false))).toBe(JSON.stringify(reference(r, false)));
        expect(Buffer.from(enc.msgpack(r, false)).equals(Buffer.from(rowEncoder.encode(reference(r, false))))).toBe(true);
      }),
      { numRuns: 300, seed: 12 },
    );
  });
});
