import { HierarchicalNSW } from "hnswlib-node";
import type { VectorMetric } from "../registry/index.ts";
import type { SearchHits, VectorIndex } from "./vector-index.ts";

export interface HnswParams {
  readonly dim: number;
  readonly metric: VectorMetric;
  readonly M: number;
  readonly efConstruction: number;
  /** Initial capacity, at most what INITIAL_BYTES holds; the index doubles when a new label does not fit. */
  readonly maxElements: number;
  /** Fixed so that builds of the same data are reproducible. */
  readonly randomSeed?: number;
}

/**
 * Most memory an empty index is created with. hnswlib allocates its whole
 * capacity up front, and hnswlib-node's initIndex lets the allocation's
 * failure escape as a C++ exception: maxElements 100,000,000 (the registry's
 * limit) at 384-d aborted the process ("terminate called after throwing
 * std::runtime_error: Not enough memory") after touching 4.9 GB, at start or
 * at a registry reload; 10,000,000 held 525 MB for an empty index (twice that
 * during a rebuild). Growing past it goes through resizeIndex, whose failure
 * is a JavaScript error (the change is left out and logged).
 */
const INITIAL_BYTES = 64 * 1024 * 1024;

/** hnswlib's bytes per element: the vector, level-0 links and label, the upper-level list pointer, its level and lock. */
function bytesPerElement(dim: number, M: number): number {
  return dim * 4 + (M * 2 * 4 + 4) + 8 + 8 + 4 + 40;
}

/** The capacity an empty index is created with: maxElements, at most what INITIAL_BYTES holds. */
function initialCapacity(params: HnswParams): number {
  return Math.max(1, Math.min(params.maxElements, Math.floor(INITIAL_BYTES / bytesPerElement(params.dim, params.M))));
}

/**
 * hnswlib-node behind VectorIndex. Replace-deleted mode stays off on purpose:
 * with it on, hnswlib refuses `addPoint` on a deleted label, and its "reuse any
 * deleted slot" path can leave a stale label→slot entry when labels are
 * reused. With it off, `addPoint` on an existing (even deleted) label unmarks
 * it and updates the vector in place, which is exactly "replace"; the label
 * map recycles removed labels so deleted slots are reused, not leaked.
 */
export class HnswVectorIndex implements VectorIndex {
  readonly algorithm = "hnsw" as const;
  readonly dim: number;
  readonly metric: VectorMetric;
  private readonly index: HierarchicalNSW;
  private capacity: number;
  private used = 0;
  private ef = -1;

  private constructor(index: HierarchicalNSW, params: HnswParams, used: number) {
    this.index = index;
    this.dim = params.dim;
    this.metric = params.metric;
    this.capacity = index.getMaxElements();
    this.used = used;
  }

  static create(params: HnswParams): HnswVectorIndex {
    const index = new HierarchicalNSW(params.metric, params.dim);
    index.initIndex({
      maxElements: initialCapacity(params),
      m: params.M,
      efConstruction: params.efConstruction,
      randomSeed: params.randomSeed ?? 100,
      allowReplaceDeleted: false,
    });
    return new HnswVectorIndex(index, params, 0);
  }

  /**
   * Loads an index written by `write`; the label map says which labels are live.
   * The file keeps the capacity the index had: one of an index created before
   * INITIAL_BYTES capped it (maxElements 10,000,000: 525 MB for an empty
   * index) was read back as large at every start, and written again as large.
   * Brought down to what `create` makes, or twice the vectors it holds (the
   * room growth leaves) when that is more.
   */
  static read(path: string, params: HnswParams): HnswVectorIndex {
    const index = new HierarchicalNSW(params.metric, params.dim);
    index.readIndexSync(path, false);
    const count = index.getCurrentCount();
    const fit = Math.max(initialCapacity(params), 2 * count);
    // Not caught: hnswlib shrinks its per-element arrays before the block whose reallocation failed, so an index left
    // at its old capacity would write past them. The read fails instead, and the snapshot is rebuilt from the store.
    if (index.getMaxElements() > fit) index.resizeIndex(fit);
    return new HnswVectorIndex(index, params, count);
  }

  slots(): number {
    return this.used;
  }

  /** The hnswlib index itself, for the benchmark's raw-hnswlib baseline (bench/suites/match.ts); not for serving code. */
  get native(): HierarchicalNSW {
    return this.index;
  }

  set(label: number, vector: readonly number[]): void {
    if (label >= this.used) {
      if (label >= this.capacity) this.grow(label + 1);
      this.used = label + 1;
    }
    this.index.addPoint(this.directionOf(vector), label);
  }

  /**
   * Under cosine, the vector scaled to unit length in double precision first:
   * hnswlib normalises in 32-bit floats, where the squares of small elements
   * (1e-23) underflow to a norm of 0 and it skips normalising, so such a
   * vector scored ~0 against its own direction (the brute-force index, in
   * doubles, scored it 1). Other metrics take the vector as it is.
   */
  private directionOf(vector: readonly number[]): number[] {
    if (this.metric !== "cosine") return vector as number[];
    let sum = 0;
    for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!;
    const norm = Math.sqrt(sum);
    if (norm === 0 || norm === 1 || !Number.isFinite(norm)) return vector as number[];
    const out = new Array<number>(vector.length);
    for (let i = 0; i < vector.length; i++) out[i] = vector[i]! / norm;
    return out;
  }

  remove(label: number): void {
    this.index.markDelete(label);
  }

  search(query: readonly number[], k: number, ef: number, filter?: (label: number) => boolean): SearchHits {
    if (this.used === 0) return { labels: [], distances: [] };
    const want = Math.min(k, this.used);
    const breadth = Math.max(ef, want);
    if (breadth !== this.ef) {
      this.index.setEf(breadth);
      this.ef = breadth;
    }
    const r = this.index.searchKnn(this.directionOf(query), want, filter);
    return { labels: r.neighbors, distances: r.distances };
  }

  async write(path: string): Promise<void> {
    await this.index.writeIndex(path);
  }

  /** Doubles capacity (at least to `need`): resizing copies the graph, so it happens rarely. */
  private grow(need: number): void {
    const next = Math.max(need, this.capacity * 2, 16);
    this.index.resizeIndex(next);
    this.capacity = next;
  }
}
