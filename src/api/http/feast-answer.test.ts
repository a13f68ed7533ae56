import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { FeatureValue } from "../../kv/kv-node.ts";
import type { FeatureRef } from "../../registry/index.ts";
import { ColumnEntities, formatRfc3339, type LookupResult, RowEntities } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";
import { feastBody } from "./encode-result.ts";
import { FeastAnswerEncoder } from "./feast-answer.ts";
import { jsonRfc3339 } from "./rfc3339-bytes.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** The kinds whose features hold float64s (registry's holdsFloats). */
const FLOAT_KINDS = new Set(["float64", "float64[]", "embedding"]);

function result(names: string[], rows: FeatureValue[][], statuses: number[], timestamps: number[], kinds: string[] = []): LookupResult {
  return {
    refs: names.map((name, c) => {
      const kind = kinds[c] ?? "string";
      return { view: {}, feature: { name, fullName: `v__${name}`, type: { kind }, floats: FLOAT_KINDS.has(kind) } } as unknown as FeatureRef;
    }),
    rowCount: rows.length,
    values: rows.flat(1),
    statuses: Uint8Array.from(statuses),
    timestamps: Float64Array.from(timestamps),
    degraded: [],
    stale: undefined,
  };
}

describe("jsonRfc3339", () => {
  const w = new ByteWriter(64);
  const spell = (ms: number) => {
    w.reset();
    jsonRfc3339(w, ms);
    return text(w.written());
  };

  test("spells every time as formatRfc3339 does, with or without milliseconds (property)", () => {
    for (const ms of [0, 1, 999, 1000, 86_399_999, 951_782_400_000, 1_700_000_000_123, 1_700_000_000_000, 253402300799999, 253402300800000, 4102444800000.5, 1000.5])
      expect(spell(ms)).toBe(JSON.stringify(formatRfc3339(ms)));
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 253402300799999 }), fc.integer({ min: 0, max: 4_000_000_000 }).map((s) => s * 1000), fc.double({ min: 0, max: 5e12, noNaN: true })), (ms) => {
        expect(spell(ms)).toBe(JSON.stringify(formatRfc3339(ms)));
      }),
      { numRuns: 2000, seed: 3 },
    );
  });
});

describe("FeastAnswerEncoder", () => {
  const enc = new FeastAnswerEncoder();

  test("writes the same JSON as JSON.stringify(feastBody), row and columnar entities, full names, UNAVAILABLE as NOT_FOUND", () => {
    const r = result(
      ["conv_rate", "city", "trips"],
      [
        [0.5, "Porto", [1, 2]],
        [null, 'São "Paulo"', []],
      ],
      [1, 4, 1, 3, 5, 2],
      [1_700_000_000_123, 1_700_000_000_000, 0, 0, 0, 1],
    );
    const byRows = new RowEntities([{ driver_id: 1001, extra: { nested: [1, "x"] } }, { driver_id: "1002" }], "entities");
    const byColumns = new ColumnEntities({ driver_id: [1001, 1002], customer_id: ["c1", "c2"] }, "entities");
    for (const entities of [byRows, byColumns])
      for (const full of [false, true]) expect(text(enc.json(r, entities, full))).toBe(JSON.stringify(feastBody(r, entities, full)));
  });

  test("float64 columns write whole numbers as floats (5.0) and -0 as -0.0, as Feast's server writes a double_val; other columns as JSON.stringify", () => {
    const r = result(
      ["d", "l", "e", "i"],
      [
        [5, [1, 2.5, -3], [0, 0.5], 7],
        [-0, [], [1e21, 2 ** 60], 8],
        [1e21, null, null, 9],
        [2.5, [9007199254740993n], [Number.NaN], null],
        [null, [1e-7], [2], 2 ** 60],
      ],
      Array(20).fill(1),
      Array(20).fill(0),
      ["float64", "float64[]", "embedding", "int64"],
    );
    const out = text(enc.json(r, new ColumnEntities({}, "entities"), false));
    const columns = [...out.matchAll(/"values":(.*?),"statuses"/g)].map((m) => m[1]);
    expect(columns).toEqual([
      "[5.0,-0.0,1e+21,2.5,null]",
      "[[1.0,2.5,-3.0],[],null,[9007199254740993.0],[1e-7]]",
      "[[0.0,0.5],[1e+21,1152921504606847000.0],null,[null],[2.0]]",
      "[7,8,9,null,1152921504606847000]",
    ]);
  });

  test("no join keys, no rows", () => {
    const r = result(["a"], [], [], []);
    const none = new ColumnEntities({}, "entities");
    expect(text(enc.json(r, none, false))).toBe(JSON.stringify(feastBody(r, none, false)));
  });

  test("columns sharing their rows' times copy the written timestamps; columns that differ write their own (property)", () => {
    const time = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4_102_444_800_000 }));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 6 }), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 5, maxLength: 5 }), fc.array(time, { minLength: 30, maxLength: 30 }), (nf, rows, group, times) => {
        // Columns in one group share the row's time (one view); different groups differ (several views, missing rows).
        const ts: number[] = [];
        for (let r = 0; r < rows; r++) for (let c = 0; c < nf; c++) ts.push(times[r * 3 + group[c]!]!);
        const r = result(Array.from({ length: nf }, (_, c) => `f${c}`), Array.from({ length: rows }, () => Array.from({ length: nf }, () => 1)), Array(rows * nf).fill(1), ts);
        const entities = new ColumnEntities({ driver_id: Array.from({ length: rows }, (_, i) => i) }, "entities");
        expect(text(enc.json(r, entities, false))).toBe(JSON.stringify(feastBody(r, entities, false)));
      }),
      { numRuns: 300, seed: 12 },
    );
  });
});
