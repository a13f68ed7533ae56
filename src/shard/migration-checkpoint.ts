import { failedPrecondition } from "../errors/index.ts";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { ServerProcess } from "../kv/kv-node.ts";

/** Where one source shard's scan stands. */
export interface SourceCursor {
  cursor: string;
  done: boolean;
  scanned: number;
  moved: number;
  /**
   * The source primary's process that issued `cursor` (and answered every page
   * of this pass): a SCAN cursor means nothing to another process, so the scan
   * starts again from 0 when the primary's address or `run_id` differs.
   * Absent: not known (no page yet, or a checkpoint written before 12-07, read
   * as "changed": that source is scanned again from the start).
   */
  process?: ServerProcess;
  /** Times this source's scan was started again from 0 because its primary became another process. */
  rescans?: number;
}

/** Totals of a migration (also what progress() reports). */
export interface MigrationCounters {
  scannedKeys: number;
  movedKeys: number;
  copiedRows: number;
  newerAtDestination: number;
  deletedKeys: number;
  recopiedKeys: number;
  /** Pages tried again after a failure (a shard's timeout or failover, a stall of this process). */
  retriedPages: number;
  /** Source scans started again from 0 because the source's primary became another process (a failover, a restart). */
  rescans: number;
}

/** What is saved after every page, so an interrupted migration resumes where it stopped. */
export interface Checkpoint {
  readonly version: 1;
  /** Identifies the ring change; a checkpoint of another plan is ignored. */
  readonly plan: string;
  readonly sources: Record<string, SourceCursor>;
  readonly counters: MigrationCounters;
  /** Keys in the sources when the migration first started (for progress). */
  readonly totalKeys: number | null;
  /** Caller's data kept with the checkpoint (the shard set stores the old shards' addresses, to resume after a restart). */
  readonly meta?: unknown;
}

export const emptyCounters = (): MigrationCounters => ({
  scannedKeys: 0,
  movedKeys: 0,
  copiedRows: 0,
  newerAtDestination: 0,
  deletedKeys: 0,
  recopiedKeys: 0,
  retriedPages: 0,
  rescans: 0,
});

/** The saved checkpoint, whatever its plan; undefined when there is none (or it is unreadable). */
export function readCheckpoint(path: string | undefined): Checkpoint | undefined {
  if (!path || !existsSync(path)) return undefined;
  try {
    const saved = JSON.parse(readFileSync(path, "utf8")) as Checkpoint;
    return saved.version === 1 ? saved : undefined;
  } catch {
    return undefined;
  }
}

/** The saved checkpoint for `plan`, or undefined (no file, other plan, unreadable). */
export function loadCheckpoint(path: string | undefined, plan: string): Checkpoint | undefined {
  const saved = readCheckpoint(path);
  return saved?.plan === plan ? saved : undefined;
}

/** Atomic replace: a crash mid-write leaves the previous checkpoint, never a torn one. */
export function saveCheckpoint(path: string | undefined, checkpoint: Checkpoint): void {
  if (!path) return;
  writeFileSync(`${path}.tmp`, JSON.stringify(checkpoint));
  renameSync(`${path}.tmp`, path);
}

export function clearCheckpoint(path: string | undefined): void {
  if (path) rmSync(path, { force: true });
}

/**
 * Throws QuiverError `checkpoint_unwritable` when a checkpoint cannot be
 * written at `path` (a read-only mount, a missing directory): called before a
 * migration changes anything, since its first page would fail on it.
 */
export function ensureCheckpointWritable(path: string | undefined): void {
  if (!path) return;
  try {
    writeFileSync(`${path}.tmp`, "");
    rmSync(`${path}.tmp`, { force: true });
  } catch (e) {
    throw failedPrecondition(
      "checkpoint_unwritable",
      `the migration checkpoint ${path} cannot be written (${(e as Error).message}); nothing was changed: set --migration-checkpoint (QUIVER_MIGRATION_CHECKPOINT) to a writable file`,
    );
  }
}
