import type { VectorMetric } from "../registry/index.ts";
import { readBytes, writeBytes } from "../runtime/index.ts";
import type { SearchHits, VectorIndex } from "./vector-index.ts";

/**
 * Exact search by scanning every vector: the oracle HNSW is tested against,
 * and the right index for tiny views (`algorithm: brute-force`), where a scan
 * is as fast as a graph walk and recall is always 1. Distances follow
 * hnswlib's spaces exactly (cosine: 1 − cos of normalised vectors; ip:
 * 1 − dot; l2: squared Euclidean) so the two are interchangeable.
 */
export class BruteForceVectorIndex implements VectorIndex {
  readonly algorithm = "brute-force" as const;
  private data: Float32Array;
  private live: Uint8Array;
  private used = 0;
  private readonly scratch: Float32Array;

  constructor(
    readonly dim: number,
    readonly metric: VectorMetric,
    capacity = 64,
  ) {
    this.data = new Float32Array(Math.max(1, capacity) * dim);
    this.live = new Uint8Array(Math.max(1, capacity));
    this.scratch = new Float32Array(dim);
  }

  /** Reads what `write` wrote. */
  static async read(path: string, dim: number, metric: VectorMetric): Promise<BruteForceVectorIndex> {
    const bytes = await readBytes(path);
    if (bytes.length < 8) throw new Error(`${path}: ${bytes.length} bytes, shorter than its header`);
    const head = new DataView(bytes.buffer, bytes.byteOffset, 8);
    const used = head.getUint32(0, true);
    if (head.getUint32(4, true) !== dim) throw new Error(`${path}: written for ${head.getUint32(4, true)} dimensions, the view has ${dim}`);
    // A short file read its missing vectors as zeros.
    const expected = 8 + used + ((4 - ((8 + used) % 4)) % 4) + used * dim * 4;
    if (bytes.length !== expected) throw new Error(`${path}: ${bytes.length} bytes, ${expected} expected for ${used} vectors of ${dim} dimensions`);
    const index = new BruteForceVectorIndex(dim, metric, used);
    index.used = used;
    index.live.set(bytes.subarray(8, 8 + used));
    const at = 8 + used + ((4 - ((8 + used) % 4)) % 4);
    index.data.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + used * dim * 4)));
    return index;
  }

  slots(): number {
    return this.used;
  }

  set(label: number, vector: readonly number[]): void {
    if (label >= this.live.length) this.grow(label + 1);
    if (label >= this.used) this.used = label + 1;
    const base = label * this.dim;
    let norm = 1;
    if (this.metric === "cosine") {
      let s = 0;
      for (let i = 0; i < this.dim; i++) s += vector[i]! * vector[i]!;
      norm = unitScale(s);
    }
    for (let i = 0; i < this.dim; i++) this.data[base + i] = vector[i]! * norm;
    this.live[label] = 1;
  }

  remove(label: number): void {
    if (label < this.used) this.live[label] = 0;
  }

  search(query: readonly number[], k: number, _ef: number, filter?: (label: number) => boolean): SearchHits {
    const dim = this.dim;
    const q = this.scratch;
    let norm = 1;
    if (this.metric === "cosine") {
      let s = 0;
      for (let i = 0; i < dim; i++) s += query[i]! * query[i]!;
      norm = unitScale(s);
    }
    for (let i = 0; i < dim; i++) q[i] = query[i]! * norm;
    // Bounded insertion into sorted arrays: k is small (≤ 1000) next to the scan.
    const labels: number[] = [];
    const distances: number[] = [];
    const data = this.data;
    for (let label = 0; label < this.used; label++) {
      if (this.live[label] === 0) continue;
      const base = label * dim;
      let d: number;
      if (this.metric === "l2") {
        d = 0;
        for (let i = 0; i < dim; i++) {
          const t = q[i]! - data[base + i]!;
          d += t * t;
        }
      } else {
        let dot = 0;
        for (let i = 0; i < dim; i++) dot += q[i]! * data[base + i]!;
        d = 1 - dot;
      }
      if (labels.length === k && d >= distances[k - 1]!) continue;
      if (filter !== undefined && !filter(label)) continue;
      let at = labels.length === k ? k - 1 : labels.length;
      while (at > 0 && distances[at - 1]! > d) {
        distances[at] = distances[at - 1]!;
        labels[at] = labels[at - 1]!;
        at--;
      }
      distances[at] = d;
      labels[at] = label;
    }
    return { labels, distances };
  }

  async write(path: string): Promise<void> {
    const pad = (4 - ((8 + this.used) % 4)) % 4;
    const out = new Uint8Array(8 + this.used + pad + this.used * this.dim * 4);
    const head = new DataView(out.buffer, 0, 8);
    head.setUint32(0, this.used, true);
    head.setUint32(4, this.dim, true);
    out.set(this.live.subarray(0, this.used), 8);
    out.set(new Uint8Array(this.data.buffer, 0, this.used * this.dim * 4), 8 + this.used + pad);
    await writeBytes(path, out);
  }

  private grow(need: number): void {
    const cap = Math.max(need, this.live.length * 2);
    const data = new Float32Array(cap * this.dim);
    data.set(this.data);
    const live = new Uint8Array(cap);
    live.set(this.live);
    this.data = data;
    this.live = live;
  }
}

/**
 * 1/‖v‖ from the sum of squares (in doubles), 0 for a zero vector, as
 * hnsw-index.ts does: 1/(‖v‖ + 1e-30) left a vector of norm 5e-33 (valid in
 * 32-bit floats) at length 0.005, scoring 0.000025 against itself.
 */
function unitScale(sumOfSquares: number): number {
  return sumOfSquares > 0 ? 1 / Math.sqrt(sumOfSquares) : 0;
}
