import { expect, test } from "bun:test";
import fc from "fast-check";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { compileRegistry } from "../../registry/read-definitions.ts";
import type { LookupResult } from "../../serving/index.ts";
import { FeastResponseEncoder } from "./encode-feast.ts";
import { encodeLookupResponse } from "./encode-quiver.ts";
import { loadProtos } from "./protos.ts";

const protos = loadProtos();
const feast = new FeastResponseEncoder(protos.type("feast.types.Value"));
const registry = compileRegistry({
  entities: [{ name: "e", joinKeys: [{ name: "id", type: "int64" }] }],
  featureViews: [
    {
      name: "v",
      entities: ["e"],
      features: [
        { name: "i", type: "int64" },
        { name: "f", type: "float64" },
        { name: "s", type: "string" },
        { name: "b", type: "bool" },
        { name: "il", type: "int64[]" },
        { name: "fl", type: "float64[]" },
        { name: "sl", type: "string[]" },
        { name: "emb", type: "embedding(3)" },
      ],
    },
  ],
});
const refs = ["i", "f", "s", "b", "il", "fl", "sl", "emb"].map((n) => registry.refs.get(`v:${n}`)!);

/** Edge values per column for three rows: negatives, 2^53-1, unicode, empty lists, nulls. */
const ROWS: FeatureValue[][] = [
  [-5, -0.25, "żółć ✓ 🚀", true, [-1, 2 ** 53 - 1, 0], [1.5, -2], ["", "é", "x".repeat(300)], [0.1, 0.2, 0.3]],
  [2 ** 53 - 1, 1e300, "", false, [], [], [], [0, 0, 0]],
  [null, null, null, null, null, null, null, null],
];

function resultOf(): LookupResult {
  const nf = refs.length;
  const values = ROWS.flat();
  const statuses = new Uint8Array(ROWS.length * nf).fill(1);
  for (let c = 0; c < nf; c++) statuses[2 * nf + c] = 5;
  const timestamps = new Float64Array(ROWS.length * nf);
  for (let c = 0; c < nf; c++) {
    timestamps[c] = 1_763_800_000_123;
    timestamps[nf + c] = 1_000;
  }
  return { refs, rowCount: ROWS.length, values, statuses, timestamps, degraded: ["s1"], stale: undefined };
}

test("the hand-written Feast encoder's bytes decode, with the standard decoder, to every value, status and time", () => {
  const type = protos.type("feast.serving.GetOnlineFeaturesResponse");
  const keyValues = [{ int64_val: 1 }, { int64_val: -2 }, { string_val: "3" }].map((v) => protos.type("feast.types.Value").fromObject(v));
  const bytes = feast.encode(resultOf(), [{ name: "id", values: keyValues }], refs.map((r) => r.feature.name));
  const msg = type.toObject(type.decode(bytes), { longs: Number, enums: String, oneofs: true, defaults: false }) as {
    metadata: { feature_names: { val: string[] } };
    results: { values: Record<string, unknown>[]; statuses: string[]; event_timestamps: { seconds?: number; nanos?: number }[] }[];
  };
  expect(msg.metadata.feature_names.val).toEqual(["id", "i", "f", "s", "b", "il", "fl", "sl", "emb"]);
  expect(msg.results[0]!.values.map((v) => v[v.val as string])).toEqual([1, -2, "3"]);
  const plain = (v: Record<string, unknown>) => {
    const x = v[v.val as string];
    if (v.val === undefined) return null;
    // A list value decodes as a message whose `val` is absent when the list is empty.
    return String(v.val).endsWith("_list_val") ? ((x as { val?: unknown[] }).val ?? []) : x;
  };
  for (let c = 0; c < refs.length; c++) {
    const vec = msg.results[c + 1]!;
    expect(vec.values.map(plain)).toEqual(ROWS.map((row) => row[c] as unknown));
    expect(vec.statuses).toEqual(["PRESENT", "PRESENT", "NOT_FOUND"]);
    expect(vec.event_timestamps).toEqual([{ seconds: 1_763_800_000, nanos: 123_000_000 }, { seconds: 1 }, {}]);
  }
});

test("the hand-written quiver.v1 encoder's bytes decode to packed columns of every type", () => {
  const type = protos.type("quiver.v1.LookupResponse");
  const bytes = encodeLookupResponse(resultOf(), refs.map((r) => r.feature.name), 77);
  const msg = type.toObject(type.decode(bytes), { longs: Number, enums: String, defaults: true, arrays: true }) as {
    id: number;
    row_count: number;
    degraded: string[];
    columns: Record<string, unknown>[];
  };
  expect(msg.id).toBe(77);
  expect(msg.row_count).toBe(3);
  expect(msg.degraded).toEqual(["s1"]);
  const lists = (x: unknown) => (x as { val: unknown[] }[]).map((l) => l.val);
  expect(msg.columns[0]!.int64_values).toEqual([-5, 2 ** 53 - 1, 0]);
  expect(msg.columns[1]!.double_values).toEqual([-0.25, 1e300, 0]);
  expect(msg.columns[2]!.string_values).toEqual(["żółć ✓ 🚀", "", ""]);
  expect(msg.columns[3]!.bool_values).toEqual([true, false, false]);
  expect(lists(msg.columns[4]!.int64_list_values)).toEqual([[-1, 2 ** 53 - 1, 0], [], []]);
  expect(lists(msg.columns[5]!.double_list_values)).toEqual([[1.5, -2], [], []]);
  expect(lists(msg.columns[6]!.string_list_values)).toEqual([["", "é", "x".repeat(300)], [], []]);
  expect(lists(msg.columns[7]!.double_list_values)).toEqual([[0.1, 0.2, 0.3], [0, 0, 0], []]);
  expect(msg.columns.map((c) => c.type)).toEqual(["INT64", "FLOAT64", "STRING", "BOOL", "INT64_LIST", "FLOAT64_LIST", "STRING_LIST", "EMBEDDING"]);
  expect(msg.columns[0]!.statuses).toEqual(["PRESENT", "PRESENT", "UNAVAILABLE"]);
  expect(msg.columns[0]!.event_timestamps_ms).toEqual([1_763_800_000_123, 1_000, 0]);
});

test("a value not of its column's type (stored before a type change) is written as the type's empty value by both encoders", () => {
  // Row values a push would refuse, but a row written under the feature's old type can hold.
  const wrong = ["x", "y", 5, "true", ["a", 7], ["b", true, 2.5], [1, "s"], "z"] as unknown as FeatureValue[];
  const nf = refs.length;
  const result: LookupResult = { refs, rowCount: 1, values: wrong, statuses: new Uint8Array(nf).fill(1), timestamps: new Float64Array(nf).fill(1_000), degraded: [], stale: undefined };
  const quiver = protos.type("quiver.v1.LookupResponse");
  const q = quiver.toObject(quiver.decode(encodeLookupResponse(result, refs.map((r) => r.feature.name), 0)), { longs: Number, defaults: true, arrays: true }) as { columns: Record<string, unknown>[] };
  const lists = (x: unknown) => (x as { val: unknown[] }[]).map((l) => l.val);
  expect(q.columns.map((c, i) => [c.int64_values, c.double_values, c.string_values, c.bool_values][i])).toEqual([[0], [0], [""], [false]]);
  expect(lists(q.columns[4]!.int64_list_values)).toEqual([[0, 7]]);
  expect(lists(q.columns[5]!.double_list_values)).toEqual([[0, 0, 2.5]]);
  expect(lists(q.columns[6]!.string_list_values)).toEqual([["", "s"]]);
  expect(lists(q.columns[7]!.double_list_values)).toEqual([[]]);
  const feastType = protos.type("feast.serving.GetOnlineFeaturesResponse");
  const keys = [{ name: "id", values: [protos.type("feast.types.Value").fromObject({ int64_val: 1 })] }];
  const f = feastType.toObject(feastType.decode(feast.encode(result, keys, refs.map((r) => r.feature.name))), { longs: Number, oneofs: true, defaults: true, arrays: true }) as {
    results: { values: Record<string, unknown>[] }[];
  };
  const firstValue = (c: number) => {
    const v = f.results[c + 1]!.values[0]!;
    const x = v[v.val as string];
    return String(v.val).endsWith("_list_val") ? (x as { val: unknown[] }).val : x;
  };
  expect(refs.map((_, c) => firstValue(c))).toEqual([0, 0, "", false, [0, 7], [0, 0, 2.5], ["", "s"], []]);
});

test("the Feast answer is byte for byte protobufjs's encoding of the same message (property)", () => {
  const valueType = protos.type("feast.types.Value");
  const responseType = protos.type("feast.serving.GetOnlineFeaturesResponse");
  const safe = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
  const text = fc.string({ unit: "binary", maxLength: 40 });
  const byKind: Record<string, fc.Arbitrary<FeatureValue>> = {
    int64: safe,
    float64: fc.double(),
    string: text,
    bool: fc.boolean(),
    "int64[]": fc.array(safe, { maxLength: 4 }),
    "float64[]": fc.array(fc.double(), { maxLength: 4 }),
    "string[]": fc.array(text, { maxLength: 3 }),
    embedding: fc.array(fc.double(), { minLength: 3, maxLength: 3 }),
  };
  // Key Values as a request brings them: the kinds written by hand and others (through protobufjs).
  const keyValue = fc.oneof(
    safe.map((v) => ({ int64_val: v })),
    text.map((v) => ({ string_val: v })),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((v) => ({ int32_val: v })),
    fc.double().map((v) => ({ double_val: v })),
    fc.boolean().map((v) => ({ bool_val: v })),
    fc.uint8Array({ maxLength: 5 }).map((v) => ({ bytes_val: v })),
    fc.array(safe, { maxLength: 3 }).map((v) => ({ int64_list_val: { val: v } })),
    fc.constant({ null_val: 0 }),
  );
  const tsMs = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4_102_444_800_000 }));
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5 }).chain((rows) =>
        fc.record({
          rows: fc.constant(rows),
          cols: fc.uniqueArray(fc.integer({ min: 0, max: refs.length - 1 }), { minLength: 1, maxLength: refs.length }),
          values: fc.array(fc.array(fc.oneof(fc.constant(null), ...Object.values(byKind)), { minLength: refs.length, maxLength: refs.length }), { minLength: rows, maxLength: rows }),
          statuses: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: rows * refs.length, maxLength: rows * refs.length }),
          times: fc.array(tsMs, { minLength: rows * refs.length, maxLength: rows * refs.length }),
          keys: fc.array(fc.array(keyValue, { minLength: rows, maxLength: rows }), { maxLength: 2 }),
          versions: fc.option(fc.array(fc.record({ name: text, version: fc.integer({ min: 0, max: 1000 }) }), { maxLength: 2 }), { nil: undefined }),
        }),
      ),
      ({ rows, cols, values, statuses, times, keys, versions }) => {
        const chosen = cols.map((c) => refs[c]!);
        const nf = chosen.length;
        // Each column holds values of its own type (or null), as the decoding path hands them over.
        const flat: FeatureValue[] = [];
        for (let r = 0; r < rows; r++) for (const c of cols) flat.push(values[r]![c] === null ? null : fc.sample(byKind[refs[c]!.feature.type.kind]!, { numRuns: 1, seed: r * 31 + c })[0]!);
        const result: LookupResult = { refs: chosen, rowCount: rows, values: flat, statuses: Uint8Array.from(statuses.slice(0, rows * nf)), timestamps: Float64Array.from(times.slice(0, rows * nf)), degraded: [], stale: undefined };
        const keyVectors = keys.map((vs, k) => ({ name: `k${k}`, values: vs.map((v) => valueType.fromObject(v)) }));
        const names = chosen.map((r) => r.feature.name);
        const ours = Buffer.from(feast.encode(result, keyVectors, names, versions)).toString("hex");
        const feastValue = (v: FeatureValue, kind: string): Record<string, unknown> => {
          // No value: a Value with no field set (as Feast's servers send it).
          if (v === null) return {};
          const field = { int64: "int64_val", float64: "double_val", string: "string_val", bool: "bool_val", "int64[]": "int64_list_val", "float64[]": "double_list_val", embedding: "double_list_val", "string[]": "string_list_val" }[kind]!;
          return { [field]: Array.isArray(v) ? { val: v } : v };
        };
        // A set time writes its seconds (even 0) and non-zero nanos.
        const stamp = (ms: number) => (ms === 0 ? {} : ms % 1000 === 0 ? { seconds: ms / 1000 } : { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
        const message = {
          metadata: { feature_names: { val: [...keyVectors.map((k) => k.name), ...names] }, feature_view_metadata: (versions ?? []).map((v) => (v.version === 0 ? { name: v.name } : v)) },
          results: [
            ...keyVectors.map((k) => ({ values: k.values, statuses: k.values.map(() => 1), event_timestamps: k.values.map(() => ({})) })),
            ...chosen.map((ref, c) => ({
              values: Array.from({ length: rows }, (_, r) => feastValue(flat[r * nf + c]!, ref.feature.type.kind)),
              statuses: Array.from({ length: rows }, (_, r) => [0, 1, 2, 3, 4, 3][result.statuses[r * nf + c]!]),
              event_timestamps: Array.from({ length: rows }, (_, r) => stamp(result.timestamps[r * nf + c]!)),
            })),
          ],
          status: true,
        };
        const theirs = Buffer.from(responseType.encode(responseType.fromObject(message)).finish()).toString("hex");
        expect(ours).toBe(theirs);
      },
    ),
    { numRuns: 300, seed: 20261205 },
  );
});

test("quiver.v1: columns with their own event times keep them; columns sharing times get the same", () => {
  const nf = refs.length;
  // Row 0: every column its own time; row 1: columns in two groups (two views), one not found (0).
  const times = Array.from({ length: 2 * nf }, (_, i) => (i < nf ? 1_700_000_000_000 + i : i % 2 === 0 ? 0 : 1_800_000_000_000));
  const result: LookupResult = { refs, rowCount: 2, values: Array(2 * nf).fill(null), statuses: new Uint8Array(2 * nf).fill(3), timestamps: Float64Array.from(times), degraded: [], stale: undefined };
  const type = protos.type("quiver.v1.LookupResponse");
  const msg = type.toObject(type.decode(encodeLookupResponse(result, refs.map((r) => r.feature.name), 0)), { longs: Number, defaults: true, arrays: true }) as { columns: { event_timestamps_ms: number[] }[] };
  expect(msg.columns.map((c) => c.event_timestamps_ms)).toEqual(refs.map((_, c) => [times[c]!, times[nf + c]!]));
});
