import { embeddingLengthProblem, type VectorMetric } from "../registry/index.ts";

/**
 * The vector-index seam: an approximate (HNSW) and an exact (brute-force)
 * implementation answer the same calls, so the brute-force one is both the
 * test oracle and the right choice for tiny views. Labels are small dense
 * integers handed out by the caller (see label-map.ts); a label may be
 * removed and later set again, which reuses its slot.
 */
export interface VectorIndex {
  readonly algorithm: "hnsw" | "brute-force";
  readonly dim: number;
  readonly metric: VectorMetric;
  /** Slots allocated so far (live and removed labels). */
  slots(): number;
  /**
   * Adds or replaces the vector under `label` (growing the index first when
   * it is full). The vector must be a plain array of `dim` finite numbers;
   * for cosine it must not be all zeros.
   */
  set(label: number, vector: readonly number[]): void;
  /** Marks the label deleted: searches never return it until it is set again. */
  remove(label: number): void;
  /**
   * The `k` nearest live labels, best first. `filter` is consulted during the
   * graph walk (not applied afterwards), so k results come back even when few
   * labels pass it. `ef` is HNSW's search breadth (ignored by brute force).
   */
  search(query: readonly number[], k: number, ef: number, filter?: (label: number) => boolean): SearchHits;
  /** Writes the index to `path` (see snapshot.ts); the caller must not mutate it until this settles. */
  write(path: string): Promise<void>;
}

/** Parallel arrays, best first; distances in the index's own terms (see `distanceOf`). */
export interface SearchHits {
  readonly labels: readonly number[];
  readonly distances: readonly number[];
}

/**
 * What a raw index distance means to a client: a `distance` in the metric's
 * usual terms and a `score` where higher is closer.
 * - cosine: raw = 1 − cos; score = cos (−1…1).
 * - ip: raw = 1 − dot; score = dot.
 * - l2: raw = squared Euclidean; distance = Euclidean, score = 1 / (1 + distance).
 */
export function scoreOf(metric: VectorMetric, raw: number): { distance: number; score: number } {
  if (metric === "l2") {
    const d = Math.sqrt(Math.max(0, raw));
    return { distance: d, score: 1 / (1 + d) };
  }
  return { distance: raw, score: 1 - raw };
}

/** Why a vector cannot go into (or query) an index of this shape, or undefined when it can. */
export function vectorProblem(v: readonly unknown[], dim: number, metric: VectorMetric): string | undefined {
  if (v.length !== dim) return `expected ${dim} dimensions, got ${v.length}`;
  let zero = true;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isFinite(x)) return `element ${i} is not a finite number`;
    // As the index stores it: a number under 32-bit float precision is 0 there.
    if (Math.fround(x) !== 0) zero = false;
  }
  const tooLong = embeddingLengthProblem(v as readonly number[]);
  if (tooLong !== undefined) return tooLong;
  if (zero && metric === "cosine") return "a zero vector has no direction (cosine metric; as 32-bit floats, which the index uses)";
  return undefined;
}
