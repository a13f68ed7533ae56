import { beforeAll, describe, expect, test } from "bun:test";
import { INDEX_DEFAULTS } from "../src/registry/compile-registry.ts";
import { BruteForceVectorIndex } from "../src/vector/brute-force-index.ts";
import { HnswVectorIndex } from "../src/vector/hnsw-index.ts";
import { clusteredVectors } from "./support/vectors.ts";

/**
 * Recall@10 of the HNSW index with the registry's default parameters against
 * the brute-force oracle, on 10k clustered 384-d vectors (the shape of
 * all-MiniLM-L6-v2 sentence embeddings of topical texts). Deterministic:
 * seeded data, fixed hnswlib seed; no timing assertions.
 */
const N = 10_000;
const DIM = 384;
const QUERIES = 100;
const data = clusteredVectors(N + QUERIES, DIM, 100, 7);
const hnsw = HnswVectorIndex.create({ dim: DIM, metric: "cosine", M: INDEX_DEFAULTS.M, efConstruction: INDEX_DEFAULTS.efConstruction, maxElements: 1000 });
const exact = new BruteForceVectorIndex(DIM, "cosine", N);

beforeAll(() => {
  for (let i = 0; i < N; i++) {
    hnsw.set(i, data[i]!);
    exact.set(i, data[i]!);
  }
}, 180_000);

function recallAt10(ef: number, filter?: (label: number) => boolean): number {
  let hits = 0;
  let total = 0;
  for (let q = 0; q < QUERIES; q++) {
    const query = data[N + q]!;
    const truth = new Set(exact.search(query, 10, 0, filter).labels);
    total += truth.size;
    for (const l of hnsw.search(query, 10, ef, filter).labels) if (truth.has(l)) hits++;
  }
  return hits / total;
}

describe("HNSW recall against brute force (10k × 384-d, clustered)", () => {
  test(`recall@10 ≥ 0.95 at the default efSearch (${INDEX_DEFAULTS.efSearch})`, () => {
    const r = recallAt10(INDEX_DEFAULTS.efSearch);
    console.log(`recall@10 at efSearch ${INDEX_DEFAULTS.efSearch}: ${r.toFixed(4)}`);
    expect(r).toBeGreaterThanOrEqual(0.95);
  }, 60_000);

  test("recall grows with efSearch", () => {
    const low = recallAt10(10);
    const high = recallAt10(128);
    console.log(`recall@10 at efSearch 10: ${low.toFixed(4)}, at 128: ${high.toFixed(4)}`);
    expect(high).toBeGreaterThanOrEqual(low);
    expect(high).toBeGreaterThanOrEqual(0.98);
  }, 60_000);

  test("with a filter passing 1 label in 10, recall@10 stays ≥ 0.95 (filter inside the walk)", () => {
    const r = recallAt10(INDEX_DEFAULTS.efSearch, (label) => label % 10 === 3);
    console.log(`filtered recall@10: ${r.toFixed(4)}`);
    expect(r).toBeGreaterThanOrEqual(0.95);
  }, 60_000);

  test("after deleting a third of the vectors, recall@10 over the rest stays ≥ 0.95", () => {
    for (let i = 0; i < N; i += 3) {
      hnsw.remove(i);
      exact.remove(i);
    }
    const r = recallAt10(INDEX_DEFAULTS.efSearch);
    console.log(`recall@10 after deletes: ${r.toFixed(4)}`);
    expect(r).toBeGreaterThanOrEqual(0.95);
  }, 60_000);
});
