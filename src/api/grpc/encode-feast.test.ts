import { expect, test } from "bun:test";
import type { FeatureValue } from "../../kv/kv-node.ts";
import { compileRegistry } from "../../registry/index.ts";
import type { LookupResult } from "../../serving/index.ts";
import { encodeFeastResponse } from "./encode-feast.ts";
import { encodeLookupResponse } from "./encode-quiver.ts";
import { loadProtos } from "./protos.ts";

const protos = loadProtos();
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
  const bytes = encodeFeastResponse(resultOf(), [{ name: "id", values: keyValues }], refs.map((r) => r.feature.name), protos.type("feast.types.Value"));
  const msg = type.toObject(type.decode(bytes), { longs: Number, enums: String, oneofs: true, defaults: false }) as {
    metadata: { feature_names: { val: string[] } };
    results: { values: Record<string, unknown>[]; statuses: string[]; event_timestamps: { seconds?: number; nanos?: number }[] }[];
  };
  expect(msg.metadata.feature_names.val).toEqual(["id", "i", "f", "s", "b", "il", "fl", "sl", "emb"]);
  expect(msg.results[0]!.values.map((v) => v[v.val as string])).toEqual([1, -2, "3"]);
  const plain = (v: Record<string, unknown>) => {
    const x = v[v.val as string];
    if (v.val === "null_val") return null;
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
  const wrong: FeatureValue[] = ["x", "y", 5, "true", ["a", 7], ["b", true, 2.5], [1, "s"], "z"];
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
  const feast = protos.type("feast.serving.GetOnlineFeaturesResponse");
  const keys = [{ name: "id", values: [protos.type("feast.types.Value").fromObject({ int64_val: 1 })] }];
  const f = feast.toObject(feast.decode(encodeFeastResponse(result, keys, refs.map((r) => r.feature.name), protos.type("feast.types.Value"))), { longs: Number, oneofs: true, defaults: true, arrays: true }) as {
    results: { values: Record<string, unknown>[] }[];
  };
  const firstValue = (c: number) => {
    const v = f.results[c + 1]!.values[0]!;
    const x = v[v.val as string];
    return String(v.val).endsWith("_list_val") ? (x as { val: unknown[] }).val : x;
  };
  expect(refs.map((_, c) => firstValue(c))).toEqual([0, 0, "", false, [0, 7], [0, 0, 2.5], ["", "s"], []]);
});
