import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { prng, unitVector } from "../../test/support/vectors.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { filterPredicate, parseFilter } from "./match-filter.ts";
import { ViewIndex } from "./view-index.ts";

function registryWith(algorithm: "hnsw" | "brute-force") {
  return compileRegistry({
    entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
    featureViews: [
      {
        name: "items",
        entities: ["item"],
        features: [
          { name: "tag", type: "string" },
          { name: "vec", type: "embedding(8)" },
        ],
        index: { feature: "vec", algorithm, M: 8, efConstruction: 64, efSearch: 64, maxElements: 4 },
      },
    ],
  });
}

const keyOf = (id: number) => `items@1/item_id=i${id}`;

type Op = { kind: "put"; id: number; seed: number; tag: number } | { kind: "delete"; id: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("put" as const), id: fc.integer({ min: 0, max: 30 }), seed: fc.integer({ min: 1, max: 1 << 30 }), tag: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), id: fc.integer({ min: 0, max: 30 }) }) },
);

test("an empty brute-force index of a wide embedding allocates for a few vectors, not maxElements (capped at 65,536)", () => {
  const wide = compileRegistry({
    entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
    featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(65536)" }], index: { feature: "vec", algorithm: "brute-force", maxElements: 100000 } }],
  }).views.get("items")!;
  // 65,536 × 65,536 floats: RangeError (out of memory), and the build was tried again for good.
  const vi = ViewIndex.empty(wide, wide.index!, undefined);
  const v = new Array<number>(65536).fill(0);
  v[3] = 1;
  expect(vi.apply(keyOf(1), { ts: 1, values: [v] }, 0)).toBe("added");
  expect(vi.search(v, 1, 16, undefined)[0]!.key).toBe(keyOf(1));
});

for (const algorithm of ["hnsw", "brute-force"] as const) {
  describe(`ViewIndex (${algorithm})`, () => {
    const view = registryWith(algorithm).views.get("items")!;

    test("a replacement the index refused leaves the key at its old time, so the same change applied again takes", () => {
      const vi = ViewIndex.empty(view, view.index!, undefined);
      const a = unitVector(8, prng(1));
      const b = unitVector(8, prng(2));
      expect(vi.apply(keyOf(1), { ts: 1, values: ["a", a] }, 0)).toBe("added");
      const index = (vi as unknown as { index: { set(label: number, v: Float32Array): void } }).index;
      const set = index.set.bind(index);
      index.set = () => {
        throw new Error("test: refused");
      };
      expect(() => vi.apply(keyOf(1), { ts: 2, values: ["b", b] }, 0)).toThrow("refused");
      index.set = set;
      // It kept time 2 with vector a: the replay read as "unchanged" and a stayed.
      expect(vi.apply(keyOf(1), { ts: 2, values: ["b", b] }, 0)).toBe("replaced");
      expect(vi.search(b, 1, 16, undefined)[0]!.key).toBe(keyOf(1));
    });

    test("property: after any sequence of puts and deletes, deleted keys never come back and every live key is found at its latest vector", () => {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 80 }), (ops) => {
          const vi = ViewIndex.empty(view, view.index!, undefined);
          const model = new Map<string, { vector: number[]; tag: string }>();
          let ts = 1;
          for (const o of ops) {
            const key = keyOf(o.id);
            if (o.kind === "put") {
              const vector = unitVector(8, prng(o.seed));
              const tag = `t${o.tag}`;
              vi.apply(key, { ts: ts++, values: [tag, vector] }, 0);
              model.set(key, { vector, tag });
            } else {
              vi.apply(key, undefined, 0);
              model.delete(key);
            }
          }
          expect(vi.size).toBe(model.size);
          const probe = unitVector(8, prng(99));
          const all = vi.search(probe, 100, 200, undefined).map((h) => h.key);
          for (const k of all) expect(model.has(k)).toBe(true);
          for (const [key, { vector, tag }] of model) {
            const [top] = vi.search(vector, 1, 64, undefined);
            expect(top?.raw ?? 1).toBeCloseTo(0, 4);
            // Same vector under two keys is possible only with equal seeds; then either key is a correct answer.
            if (top!.key !== key) expect(model.get(top!.key)!.vector).toEqual(vector);
            const filter = filterPredicate(parseFilter({ tag }, view), vi.attributes);
            for (const h of vi.search(vector, 5, 64, filter)) expect(model.get(h.key)!.tag).toBe(tag);
          }
        }),
        { numRuns: 60, seed: 42 },
      );
    });

    test("an older row never replaces a newer one; the same row again changes nothing", () => {
      const vi = ViewIndex.empty(view, view.index!, undefined);
      const a = unitVector(8, prng(1));
      const b = unitVector(8, prng(2));
      expect(vi.apply(keyOf(1), { ts: 10, values: ["x", a] }, 0)).toBe("added");
      expect(vi.apply(keyOf(1), { ts: 5, values: ["x", b] }, 0)).toBe("unchanged");
      expect(vi.apply(keyOf(1), { ts: 10, values: ["x", a] }, 0)).toBe("unchanged");
      expect(vi.apply(keyOf(1), { ts: 11, values: ["x", b] }, 0)).toBe("replaced");
      expect(vi.search(b, 1, 64, undefined)[0]!.key).toBe(keyOf(1));
    });

    test("rows without a usable vector are not indexed, and drop a vector the key had", () => {
      const vi = ViewIndex.empty(view, view.index!, undefined);
      expect(vi.apply(keyOf(1), { ts: 1, values: ["x", null] }, 0)).toBe("skipped");
      expect(vi.apply(keyOf(2), { ts: 1, values: ["x", unitVector(8, prng(3))] }, 0)).toBe("added");
      expect(vi.apply(keyOf(2), { ts: 2, values: ["x", [0, 0, 0, 0, 0, 0, 0, 0]] }, 0)).toBe("removed");
      expect(vi.size).toBe(0);
    });

    test("a row of another key prefix (the view's previous version) is not indexed", () => {
      const bumped = compileRegistry({
        entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
        featureViews: [{ name: "items", version: 2, entities: ["item"], features: [{ name: "tag", type: "string" }, { name: "vec", type: "embedding(8)" }], index: { feature: "vec", algorithm } }],
      }).views.get("items")!;
      const vi = ViewIndex.empty(bumped, bumped.index!, undefined);
      expect(vi.apply(keyOf(1), { ts: 1, values: ["x", unitVector(8, prng(1))] }, 0)).toBe("skipped");
      expect(vi.size).toBe(0);
    });

    test("deleted labels are reused, so churn does not grow the index", () => {
      const vi = ViewIndex.empty(view, view.index!, undefined);
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) vi.apply(keyOf(round * 100 + i), { ts: round + 1, values: ["x", unitVector(8, prng(round * 100 + i + 1))] }, 0);
        expect(vi.deletedRatio).toBe(0);
        for (let i = 0; i < 20; i++) vi.apply(keyOf(round * 100 + i), undefined, 0);
        expect(vi.deletedRatio).toBe(1);
      }
      expect(vi.labels.slots).toBe(20);
      expect(vi.index.slots()).toBe(20);
    });
  });
}
