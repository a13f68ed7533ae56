import { mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import type { CompiledView, VectorIndexSpec } from "../registry/index.ts";
import { type FileDigest, fileDigest, readTextFile, writeBytes } from "../runtime/index.ts";
import { BruteForceVectorIndex } from "./brute-force-index.ts";
import type { Embedder } from "./embedder.ts";
import { HnswVectorIndex } from "./hnsw-index.ts";
import { LabelMap, type LabelMapJson } from "./label-map.ts";
import { ViewIndex } from "./view-index.ts";

/**
 * Index snapshots under `<data-dir>/vector/`: per view, the index file of one
 * generation (`<view>@<version>.<gen>.index`) and a manifest
 * (`<view>@<version>.snapshot.json`) holding the generation, the index's shape,
 * the label map and the last applied change. The manifest is written last and
 * renamed into place, so a crash at any point leaves the previous complete
 * snapshot (an index file is only ever read through the manifest naming it).
 */
interface Manifest {
  /** 2 since the index file's digest is kept: a damaged file (truncated, garbage mid-file) loaded as a snapshot. */
  readonly format: 2;
  /** The index file's length and SHA-256 as written: checked before it is read. */
  readonly index: FileDigest;
  readonly generation: number;
  readonly shape: string;
  readonly size: number;
  readonly lastApplied: { readonly ts: number; readonly at: number };
  readonly writtenAt: number;
  readonly labels: LabelMapJson;
}

export class SnapshotStore {
  constructor(private readonly dir: string) {}

  private base(view: CompiledView): string {
    return `${this.dir}/${view.name}@${view.version}`;
  }

  /** Writes the view's index; the caller keeps it unchanged until this settles. */
  async write(vi: ViewIndex, now: number): Promise<void> {
    const finish = await this.writeIndex(vi, now);
    await finish();
  }

  /**
   * Writes the view's index file and takes what the manifest needs of it; the
   * caller keeps the index unchanged until this settles, and may change it
   * again while the answer (hashing the file, writing the manifest) runs: a
   * GB index takes about a second to hash, and changes from the feed waited
   * for it.
   */
  async writeIndex(vi: ViewIndex, now: number): Promise<() => Promise<void>> {
    mkdirSync(this.dir, { recursive: true });
    const base = this.base(vi.view);
    const generation = now;
    const indexFile = `${base}.${generation}.index`;
    await vi.index.write(indexFile);
    // Taken now, as text: the label map and the last change move on once the caller lets go.
    const rest = JSON.stringify({ generation, shape: vi.shape, size: vi.size, lastApplied: vi.lastApplied, writtenAt: now, labels: vi.labels.toJSON() } satisfies Omit<Manifest, "format" | "index">);
    return async () => {
      const head = JSON.stringify({ format: 2, index: await fileDigest(indexFile) } satisfies Pick<Manifest, "format" | "index">);
      const tmp = `${base}.snapshot.json.tmp`;
      await writeBytes(tmp, `${head.slice(0, -1)},${rest.slice(1)}`);
      renameSync(tmp, `${base}.snapshot.json`);
      this.dropOtherGenerations(vi.view, generation);
    };
  }

  /**
   * The view's last snapshot, or undefined when there is none or it was made
   * for a different shape (then the caller rebuilds). A damaged snapshot is
   * reported and ignored, never fatal.
   */
  async read(view: CompiledView, spec: VectorIndexSpec, embedder: Embedder | undefined): Promise<ViewIndex | undefined> {
    const base = this.base(view);
    const text = await readTextFile(`${base}.snapshot.json`);
    if (text === undefined) return undefined;
    try {
      const m = JSON.parse(text) as Manifest;
      if (m.format !== 2 || m.shape !== ViewIndex.shapeOf(view, spec)) return undefined;
      const indexFile = `${base}.${m.generation}.index`;
      // A damaged index file loaded: a truncated brute-force file read its missing vectors as zeros (100 of 200 claims
      // no longer matched themselves, for good), and garbage mid-file in an HNSW index crashed the process (SIGSEGV)
      // at the first match. Checked whole before either reader sees it.
      const found = await fileDigest(indexFile);
      if (found.bytes !== m.index.bytes || found.sha256 !== m.index.sha256) {
        throw new Error(`${indexFile} is not the file its manifest recorded (${found.bytes} bytes, sha256 ${found.sha256.slice(0, 12)}…; recorded ${m.index.bytes} bytes, ${m.index.sha256.slice(0, 12)}…)`);
      }
      const index =
        spec.algorithm === "hnsw"
          ? HnswVectorIndex.read(indexFile, { dim: spec.dim, metric: spec.metric, M: spec.M, efConstruction: spec.efConstruction, maxElements: spec.maxElements })
          : await BruteForceVectorIndex.read(indexFile, spec.dim, spec.metric);
      const labels = LabelMap.fromJSON(m.labels);
      if (index.slots() < labels.slots) throw new Error(`index holds ${index.slots()} slots, the label map ${labels.slots}`);
      const vi = new ViewIndex(view, spec, index, labels, embedder);
      vi.lastApplied = m.lastApplied;
      return vi;
    } catch (e) {
      console.error(`quiver: ignoring the vector snapshot of ${view.name} (${(e as Error).message}); rebuilding from the store`);
      return undefined;
    }
  }

  /**
   * Removes the view's other index files: this version's earlier generations,
   * and every file of its other versions (a version bump's index is read from
   * its own files; the old version's, an index's size each, were kept for good).
   */
  private dropOtherGenerations(view: CompiledView, keep: number): void {
    const prefix = `${view.name}@${view.version}.`;
    const anyVersion = `${view.name}@`;
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(anyVersion)) continue;
      const other = !name.startsWith(prefix);
      if ((other && (name.endsWith(".index") || name.endsWith(".snapshot.json"))) || (!other && name.endsWith(".index") && name !== `${prefix}${keep}.index`)) {
        rmSync(`${this.dir}/${name}`, { force: true });
      }
    }
  }
}
