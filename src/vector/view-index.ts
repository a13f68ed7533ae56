import type { FeatureValue, StoredRow } from "../kv/kv-node.ts";
import type { CompiledView, VectorIndexSpec } from "../registry/index.ts";
import { AttributeTable } from "./attributes.ts";
import { BruteForceVectorIndex } from "./brute-force-index.ts";
import type { Embedder } from "./embedder.ts";
import { HnswVectorIndex } from "./hnsw-index.ts";
import { LabelMap } from "./label-map.ts";
import { type VectorIndex, vectorProblem } from "./vector-index.ts";

/** What applying one stored row did to the index. */
export type ApplyOutcome = "added" | "replaced" | "removed" | "unchanged" | "skipped";

/** One search hit, resolved to its storage key. */
export interface ViewHit {
  readonly key: string;
  readonly label: number;
  readonly raw: number;
}

/**
 * One feature view's live vector index: the index itself, its label map and
 * the scalar attributes filters test. Everything here is synchronous and
 * single-threaded (JavaScript's), so a search never sees half an update.
 */
export class ViewIndex {
  readonly attributes: AttributeTable;
  /** Highest row event time applied, and when (wall clock ms): "the last applied change". */
  lastApplied = { ts: 0, at: 0 };
  /** Bumped on every change; snapshots compare it to skip unchanged views. */
  version = 0;

  constructor(
    readonly view: CompiledView,
    public spec: VectorIndexSpec,
    readonly index: VectorIndex,
    readonly labels: LabelMap,
    public embedder: Embedder | undefined,
  ) {
    this.attributes = new AttributeTable(view);
  }

  static empty(view: CompiledView, spec: VectorIndexSpec, embedder: Embedder | undefined): ViewIndex {
    return new ViewIndex(view, spec, newIndex(spec), new LabelMap(), embedder);
  }

  /**
   * Identity of everything the built index depends on: the graph's parameters
   * and the view's feature layout (the filter attributes are read by position).
   * A change needs a rebuild; efSearch, capacity and the embedder do not.
   */
  static shapeOf(view: CompiledView, spec: VectorIndexSpec): string {
    return JSON.stringify([view.keyPrefix, view.features.map((f) => `${f.name}:${f.typeName}`), spec.feature.index, spec.dim, spec.metric, spec.algorithm, spec.M, spec.efConstruction]);
  }

  get shape(): string {
    return ViewIndex.shapeOf(this.view, this.spec);
  }

  /** Live vectors. */
  get size(): number {
    return this.labels.size;
  }

  /** Share of the index's slots that are deleted and waiting for reuse. */
  get deletedRatio(): number {
    const slots = this.labels.slots;
    return slots === 0 ? 0 : this.labels.freeCount / slots;
  }

  /**
   * Brings the index in line with the store's current row for `key`
   * (undefined: the row is gone). A row with no usable vector (null, or all
   * zeros under cosine) leaves the index like a delete. A key outside the
   * view's key prefix is skipped.
   *
   * An older row than the one indexed is taken for a read that an apply
   * overtook (a drain's re-read landing after a catch-up's), and ignored,
   * unless `current` says no apply can have overtaken it (a catch-up scan,
   * which skips the keys the feed applied since it began): then the store
   * went back (a failover or restart lost the newer write) and the index
   * follows it.
   */
  apply(key: string, row: StoredRow | undefined, now: number, current = false): ApplyOutcome {
    // Another version's key (a change read before a version bump swapped this index in): not this index's row.
    if (!key.startsWith(this.view.keyPrefix)) return "skipped";
    const known = this.labels.labelOf(key);
    if (row === undefined) return known === undefined ? "unchanged" : this.drop(key, now);
    // The same row again (a replay, a catch-up over an applied change), or an older one: keep what we have.
    if (known !== undefined) {
      const have = this.labels.tsOf(known);
      // The same row: its attributes are taken (a snapshot holds none; its catch-up fills them in). An older row's are
      // not: a drain's read that predates a catch-up's left the newer vector with the older row's attributes, so a
      // filter on a corrected verdict missed the claim and one on the old verdict matched it, until it changed again.
      if (have === row.ts) {
        this.attributes.set(known, row.values);
        return "unchanged";
      }
      // Read as "the same or newer": a catch-up kept a vector the store had lost (and lookups no longer answered) for good.
      if (have > row.ts && !current) return "unchanged";
    }
    const v = row.values[this.spec.feature.index];
    const vector = usableVector(v, this.spec);
    if (vector === undefined) return known === undefined ? "skipped" : this.drop(key, now);
    const previousTs = known === undefined ? 0 : this.labels.tsOf(known);
    const label = this.labels.assign(key, row.ts);
    try {
      this.index.set(label, vector);
    } catch (e) {
      // A new key the index refused holds no label (it would be listed live without a vector); a known one keeps
      // its old time with its old vector, or a replay at the new time read as "unchanged" and the old vector stayed.
      if (known === undefined) this.labels.release(key);
      else this.labels.assign(key, previousTs);
      throw e;
    }
    this.attributes.set(label, row.values);
    this.noteChange(row.ts, now);
    return known === undefined ? "added" : "replaced";
  }

  /**
   * Nearest live vectors, best first. `filter` runs inside the graph walk;
   * `exclude` drops one key (the query entity itself).
   */
  search(query: readonly number[], k: number, ef: number, filter: ((label: number) => boolean) | undefined, exclude?: string): ViewHit[] {
    const skip = exclude === undefined ? undefined : this.labels.labelOf(exclude);
    // Without a filter, the excluded label is dropped from k + 1 results: a JS filter callback
    // costs hnswlib one call into JavaScript per visited node, which is most of a search.
    const hits =
      skip === undefined
        ? this.index.search(query, k, ef, filter)
        : filter === undefined
          ? this.index.search(query, k + 1, ef)
          : this.index.search(query, k, ef, (l) => l !== skip && filter(l));
    const out: ViewHit[] = [];
    for (let i = 0; i < hits.labels.length && out.length < k; i++) {
      const label = hits.labels[i]!;
      if (label === skip) continue;
      const key = this.labels.keyOf(label);
      if (key !== undefined) out.push({ key, label, raw: hits.distances[i]! });
    }
    return out;
  }

  private drop(key: string, now: number): ApplyOutcome {
    const label = this.labels.release(key);
    if (label === undefined) return "unchanged";
    this.index.remove(label);
    this.attributes.clear(label);
    this.version++;
    this.lastApplied = { ts: this.lastApplied.ts, at: now };
    return "removed";
  }

  private noteChange(ts: number, now: number): void {
    this.version++;
    this.lastApplied = { ts: Math.max(ts, this.lastApplied.ts), at: now };
  }
}

/**
 * A brute-force index starts small and doubles as it fills: sized for
 * min(maxElements, 65,536) vectors up front, an empty view of embedding(65536)
 * asked for 16 GiB (RangeError, the build retried for good) and one of
 * embedding(1536) held 384 MiB for a single vector.
 */
export function newIndex(spec: VectorIndexSpec): VectorIndex {
  return spec.algorithm === "brute-force"
    ? new BruteForceVectorIndex(spec.dim, spec.metric, Math.min(spec.maxElements, 64))
    : HnswVectorIndex.create({ dim: spec.dim, metric: spec.metric, M: spec.M, efConstruction: spec.efConstruction, maxElements: spec.maxElements });
}

/** The stored value as a plain number array hnswlib accepts, or undefined when it cannot be indexed. */
function usableVector(v: FeatureValue | undefined, spec: VectorIndexSpec): readonly number[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const arr = v as readonly unknown[];
  if (vectorProblem(arr, spec.dim, spec.metric) !== undefined) return undefined;
  return arr as readonly number[];
}
