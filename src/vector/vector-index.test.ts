import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { HierarchicalNSW } from "hnswlib-node";
import { clusteredVectors } from "../../test/support/vectors.ts";
import type { VectorMetric } from "../registry/index.ts";
import { BruteForceVectorIndex } from "./brute-force-index.ts";
import { HnswVectorIndex } from "./hnsw-index.ts";
import { scoreOf, type VectorIndex, vectorProblem } from "./vector-index.ts";

const dir = mkdtempSync(`${tmpdir()}/quiver-vi-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Impl {
  readonly name: string;
  create(dim: number, metric: VectorMetric, capacity: number): VectorIndex;
  read(path: string, dim: number, metric: VectorMetric): Promise<VectorIndex>;
}
const IMPLS: Impl[] = [
  {
    name: "HnswVectorIndex",
    create: (dim, metric, capacity) => HnswVectorIndex.create({ dim, metric, M: 16, efConstruction: 100, maxElements: capacity }),
    read: async (path, dim, metric) => HnswVectorIndex.read(path, { dim, metric, M: 16, efConstruction: 100, maxElements: 4 }),
  },
  { name: "BruteForceVectorIndex", create: (dim, metric, capacity) => new BruteForceVectorIndex(dim, metric, capacity), read: (path, dim, metric) => BruteForceVectorIndex.read(path, dim, metric) },
];

/** One contract, run against every implementation (hono's common-case style). */
for (const impl of IMPLS) {
  describe(`VectorIndex contract: ${impl.name}`, () => {
    const data = clusteredVectors(300, 16, 6, 11);

    test("finds a stored vector as its own nearest neighbour, best first", () => {
      const ix = impl.create(16, "cosine", 512);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      for (const probe of [0, 17, 299]) {
        const hits = ix.search(data[probe]!, 5, 64);
        expect(hits.labels[0]).toBe(probe);
        expect(hits.distances[0]!).toBeCloseTo(0, 5);
        for (let i = 1; i < hits.distances.length; i++) expect(hits.distances[i]!).toBeGreaterThanOrEqual(hits.distances[i - 1]!);
      }
    });

    test("grows past its initial capacity", () => {
      const ix = impl.create(16, "l2", 4);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      expect(ix.slots()).toBe(300);
      expect(ix.search(data[250]!, 1, 32).labels).toEqual([250]);
    });

    test("a removed label is never returned; setting it again brings it back at its new place", () => {
      const ix = impl.create(16, "cosine", 512);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      ix.remove(7);
      expect(ix.search(data[7]!, 20, 64).labels).not.toContain(7);
      ix.set(7, data[100]!);
      const hits = ix.search(data[100]!, 2, 64);
      expect(hits.labels).toContain(7);
      expect(hits.labels).toContain(100);
      expect(ix.slots()).toBe(300);
    });

    test("replacing a vector moves the label", () => {
      const ix = impl.create(16, "ip", 512);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      ix.set(3, data[200]!);
      expect(ix.search(data[3]!, 10, 64).labels).not.toContain(3);
      expect(ix.search(data[200]!, 2, 64).labels).toContain(3);
    });

    test("the filter is applied during the search: k results even when few labels pass", () => {
      const ix = impl.create(16, "cosine", 512);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      const hits = ix.search(data[0]!, 10, 64, (label) => label % 29 === 0);
      expect(hits.labels.length).toBe(10);
      for (const l of hits.labels) expect(l % 29).toBe(0);
    });

    test("k above the number of vectors answers them all", () => {
      const ix = impl.create(16, "cosine", 8);
      for (let i = 0; i < 3; i++) ix.set(i, data[i]!);
      expect(ix.search(data[0]!, 10, 64).labels.length).toBe(3);
      expect(impl.create(16, "cosine", 8).search(data[0]!, 10, 64).labels).toEqual([]);
    });

    test("write and read give the same answers", async () => {
      const ix = impl.create(16, "cosine", 64);
      for (let i = 0; i < data.length; i++) ix.set(i, data[i]!);
      ix.remove(5);
      const path = `${dir}/${impl.name}.index`;
      await ix.write(path);
      const back = await impl.read(path, 16, "cosine");
      expect(back.slots()).toBe(300);
      for (const probe of [5, 40, 123]) expect(back.search(data[probe]!, 10, 64)).toEqual(ix.search(data[probe]!, 10, 64));
      back.set(300, data[5]!);
      expect(back.search(data[5]!, 1, 64).labels).toEqual([300]);
    });
  });
}

describe("HnswVectorIndex capacity", () => {
  test("a huge maxElements is not allocated up front: the index starts within 64 MiB and grows as vectors come", () => {
    // 10M × 384-d held 525 MB for an empty index; 100M (the registry's limit) aborted the process in initIndex.
    const ix = HnswVectorIndex.create({ dim: 384, metric: "cosine", M: 16, efConstruction: 32, maxElements: 100_000_000 });
    const capacity = ix.native.getMaxElements();
    expect(capacity).toBeLessThan(100_000);
    expect(capacity * (384 * 4 + 2 * 16 * 4 + 4 + 8)).toBeLessThanOrEqual(64 * 1024 * 1024);
    const data = clusteredVectors(20, 384, 2, 5);
    // Labels past the initial capacity grow it, as for any index.
    ix.set(capacity + 5, data[0]!);
    for (let i = 1; i < data.length; i++) ix.set(i, data[i]!);
    expect(ix.native.getMaxElements()).toBeGreaterThan(capacity + 5);
    expect(ix.search(data[0]!, 1, 64).labels).toEqual([capacity + 5]);
    // A small maxElements is taken as given.
    expect(HnswVectorIndex.create({ dim: 384, metric: "cosine", M: 16, efConstruction: 32, maxElements: 500 }).native.getMaxElements()).toBe(500);
  });

  test("an index file written with more capacity than that (before the cap) is read back within it, and grows", async () => {
    // 4096-d: 64 MiB holds ~4,000; this file says 10,000 (165 MB), as a snapshot of an index created before the cap does.
    const params = { dim: 4096, metric: "cosine" as const, M: 16, efConstruction: 32, maxElements: 100_000_000 };
    const old = new HierarchicalNSW("cosine", params.dim);
    old.initIndex({ maxElements: 10_000, m: params.M, efConstruction: params.efConstruction, randomSeed: 100, allowReplaceDeleted: false });
    const data = clusteredVectors(12, params.dim, 2, 5);
    for (let i = 0; i < 10; i++) old.addPoint(data[i]!, i);
    const path = `${dir}/before-the-cap.index`;
    await old.writeIndex(path);
    const ix = HnswVectorIndex.read(path, params);
    const created = HnswVectorIndex.create(params).native.getMaxElements();
    expect(created).toBeLessThan(10_000);
    // Read back at 10,000 (and written again so), whatever the cap.
    expect(ix.native.getMaxElements()).toBe(created);
    expect(ix.native.getCurrentCount()).toBe(10);
    expect(ix.search(data[3]!, 1, 64).labels).toEqual([3]);
    ix.set(10, data[10]!);
    ix.set(created + 1, data[11]!);
    expect(ix.native.getMaxElements()).toBeGreaterThan(created + 1);
    expect(ix.search(data[11]!, 1, 64).labels).toEqual([created + 1]);
    expect(ix.search(data[10]!, 1, 64).labels).toEqual([10]);
  });
});

describe("distances and scores", () => {
  test("brute force and hnswlib agree on distances in every metric", () => {
    const data = clusteredVectors(50, 8, 3, 5);
    for (const metric of ["cosine", "l2", "ip"] as const) {
      const h = IMPLS[0]!.create(8, metric, 64);
      const b = IMPLS[1]!.create(8, metric, 64);
      data.forEach((v, i) => {
        h.set(i, v);
        b.set(i, v);
      });
      const hh = h.search(data[9]!, 5, 64);
      const bb = b.search(data[9]!, 5, 64);
      expect(hh.labels).toEqual(bb.labels);
      for (let i = 0; i < hh.distances.length; i++) expect(hh.distances[i]!).toBeCloseTo(bb.distances[i]!, 4);
    }
  });

  test("cosine: vectors whose squares underflow 32-bit floats keep their direction (hnswlib scored one ~0 against itself)", () => {
    const h = IMPLS[0]!.create(4, "cosine", 64);
    const b = IMPLS[1]!.create(4, "cosine", 64);
    const tiny = [1e-23, 0, 0, 1e-23];
    for (const index of [h, b]) {
      index.set(1, tiny);
      index.set(2, [1, 0, 0, 0]);
    }
    const hh = h.search([1, 0, 0, 1], 2, 64);
    const bb = b.search([1, 0, 0, 1], 2, 64);
    expect(hh.labels).toEqual([1, 2]);
    expect(hh.labels).toEqual(bb.labels);
    expect(hh.distances[0]!).toBeCloseTo(0, 5);
    // As a query too.
    expect(h.search(tiny, 1, 64).labels).toEqual([1]);
  });

  test("cosine: a vector of tiny length (norm below 1e-30) is normalised, and scores 1 against itself in both indexes", () => {
    const tiny = [3e-33, 4e-33, 0, 0];
    expect(vectorProblem(tiny, 4, "cosine")).toBeUndefined();
    for (const impl of IMPLS) {
      const index = impl.create(4, "cosine", 64);
      index.set(0, tiny);
      index.set(1, [0, 0, 1, 0]);
      const hits = index.search(tiny, 1, 64);
      expect(hits.labels).toEqual([0]);
      // Brute force divided by (norm + 1e-30): the vector kept a length of 0.005 and scored 0.000025 against itself.
      expect(scoreOf("cosine", hits.distances[0]!).score).toBeCloseTo(1, 4);
    }
  });

  test("score is higher for closer vectors; l2 distance is Euclidean", () => {
    expect(scoreOf("cosine", 0.1)).toEqual({ distance: 0.1, score: 0.9 });
    expect(scoreOf("ip", 0.25).score).toBe(0.75);
    expect(scoreOf("l2", 4)).toEqual({ distance: 2, score: 1 / 3 });
  });

  test("vectorProblem names wrong dimensions, non-finite numbers and zero vectors under cosine", () => {
    expect(vectorProblem([1, 2], 3, "l2")).toContain("expected 3 dimensions, got 2");
    expect(vectorProblem([1, Number.NaN, 2], 3, "l2")).toContain("element 1");
    expect(vectorProblem([1, "2", 2], 3, "l2")).toContain("element 1");
    expect(vectorProblem([0, 0, 0], 3, "cosine")).toContain("zero vector");
    expect(vectorProblem([0, 0, 0], 3, "l2")).toBeUndefined();
  });

  test("vectorProblem refuses what 32-bit floats cannot hold: an overflowing length, and a cosine vector that rounds to zero", () => {
    // 1e200 is a finite double; in the index's floats it is Infinity, and its distances NaN.
    expect(vectorProblem([1e200, 1, 1], 3, "l2")).toContain("length (L2 norm)");
    expect(vectorProblem([1e18, 1e18, 0], 3, "ip")).toContain("length (L2 norm)");
    expect(vectorProblem([1e17, 1e17, 1e17], 3, "cosine")).toBeUndefined();
    expect(vectorProblem([1e-46, 0, 0], 3, "cosine")).toContain("zero vector");
    expect(vectorProblem([1e-30, 0, 0], 3, "cosine")).toBeUndefined();
  });
});
