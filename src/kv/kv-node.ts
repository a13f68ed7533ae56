/**
 * The storage seam. Every place Quiver keeps rows — an in-process map, a Redis
 * server, a replica set, the whole sharded ring, a cache tier — is a KvNode,
 * so composites can stack without the lookup path knowing what is below it.
 */

import type { KeyBatch } from "./key-batch.ts";

/**
 * One feature value as the API and storage see it (embeddings are number
 * arrays). An int64 beyond ±(2^53 − 1) is a bigint (src/kv/int64.ts); every
 * other number, safe int64s included, is a number.
 */
export type FeatureValue = number | bigint | string | boolean | null | readonly (number | bigint)[] | readonly string[] | readonly boolean[];

/**
 * A stored (feature view, entity) row: the view's feature values in declaration
 * order, plus the event time that orders writes (last write wins by `ts`).
 * Rows are immutable once handed to a node; nodes may keep the reference.
 */
export interface StoredRow {
  /** Event timestamp, milliseconds since the Unix epoch. */
  readonly ts: number;
  readonly values: readonly FeatureValue[];
  /**
   * Set only on rows a cache served from its grace window (past their TTL)
   * because the origin could not answer: the lookup flags such values.
   */
  readonly stale?: true;
}

/**
 * Per-request read context, created once per lookup and passed unchanged
 * through every composite to the nodes that do I/O.
 */
export interface ReadContext {
  /** Aborts the read (client gone, budget spent). */
  readonly signal?: AbortSignal;
  /**
   * When the caller stops waiting, in ms on the `performance.now()` clock: a
   * node that cannot answer by then yields UNAVAILABLE, never a late answer.
   */
  readonly deadline?: number;
  /**
   * Filled by composites: ids of the nodes (shards) that could not answer some
   * of this request's keys. Created by the caller when it wants to know.
   */
  readonly degraded?: string[];
  /**
   * Read the authoritative copy: a replica set reads its primary, where a
   * replica's lag cannot hide a write the caller has heard was acknowledged
   * (the vector indexes re-reading a changed row). Nodes without replicas
   * are authoritative already; composites forward it with the context.
   */
  readonly fromPrimary?: boolean;
}

/** A key with the row to write under it. */
export interface KvEntry {
  readonly key: string;
  readonly row: StoredRow;
}

/**
 * Marks a key whose node could not answer. Composites return it instead of
 * failing the whole batch, so the lookup can serve defaults for just those rows.
 */
export const UNAVAILABLE: unique symbol = Symbol.for("quiver.unavailable");
export type Unavailable = typeof UNAVAILABLE;

/** What a read yields for one key: the row, a miss, or "storage could not answer". */
export type ReadSlot = StoredRow | undefined | Unavailable;

/** Counts of a last-write-wins batch write. */
export interface PutOutcome {
  /** Rows stored because they were new or newer than what was there. */
  written: number;
  /** Rows skipped because the stored row's event time was the same or newer. */
  ignored: number;
  /**
   * Of `ignored`, rows whose stored event time was the same as theirs: a
   * replay of what is there (a writer's retry, a stream redelivered), as
   * against an older event arriving late. A writer that could not read the
   * stored rows first learns the difference here.
   */
  sameTime: number;
}

/** One page of a key scan, for rebalancing and maintenance. */
export interface ScanPage {
  /** Opaque; "0" once the scan is complete. */
  readonly cursor: string;
  readonly keys: readonly string[];
}

/** Liveness of a node as seen by the caller. */
export interface NodeHealth {
  readonly id: string;
  readonly ok: boolean;
  /** Free-form details (role, lag, error) for /readyz. */
  readonly detail?: Record<string, unknown>;
}

/**
 * Whether a node can answer a read from process memory, without I/O:
 * - "always": every read (an in-process store);
 * - "sometimes": when the keys happen to be resident (a cache tier on an L1 hit);
 * - "never": every read needs I/O (Redis, a replica set).
 * Composites derive theirs from their parts at construction, and callers pick
 * their read path once from it, never per request.
 */
export type ReadsNow = "always" | "sometimes" | "never";

/**
 * Receives stored rows as their bytes (see `RawReader`): row `index` of the
 * request, whose values are the MessagePack array at `bytes[start..end)`
 * (`view` covers the same buffer), with event time `ts`. The bytes are the
 * node's own memory: valid only during the call, never to be kept or changed.
 */
export interface RawRowSink {
  row(index: number, bytes: Uint8Array, view: DataView, start: number, end: number, ts: number): void;
}

/**
 * A node that can hand rows over without decoding them, synchronously: for
 * answers written straight from the stored MessagePack (no value objects, no
 * re-encoding). Reads the keys of the batch whose indices are `picks[from]`
 * to `picks[to - 1]` — keys as bytes, no string per key; `keys.all` picks the
 * whole batch, a router passes each member its own share — reports each
 * present one to `sink` under its index in the batch (misses are not
 * reported) and answers how many were present. Only in-process nodes offer
 * it; a composite offers it exactly when every part it reads from does. A
 * node that holds only some keys in memory (a cache tier's L1) answers -1
 * when it cannot answer every key of the read now, as `getManyNow` answers
 * undefined; rows it reported before are then the caller's to drop, and the
 * caller reads through `getMany`. A composite answers -1 when a part does.
 */
export interface RawReader {
  readRaw(keys: KeyBatch, picks: Int32Array, from: number, to: number, sink: RawRowSink): number;
  /**
   * Present exactly on a reader that answers -1 for keys it holds only
   * elsewhere (a cache tier: L1 in memory, L2 and the origin behind it): one
   * pass over memory for the whole batch, its rows held (ThroughRows). When
   * every key was in memory (`missing` 0) they are reported at once, as
   * readRaw's are, and the object is the reader's own, valid until its next
   * call. Otherwise `readRest` reads the missing keys through as `getMany`
   * reads them (once, joining reads in flight, filling L1), the rows are
   * reported after it, and the object is the caller's. The batch is read
   * during the call: it may be reused at once. Absent (undefined) on readers
   * that answer every key now (in-process stores) and on composites of
   * several readers.
   */
  readonly readThrough: ((keys: KeyBatch) => ThroughRows) | undefined;
}

/** The rows of a read-through raw read (RawReader.readThrough), held until reported. */
export interface ThroughRows {
  /** Keys of the batch. */
  readonly count: number;
  /** Keys the pass over memory did not find: `readRest` reads them, before anything is reported. */
  readonly missing: number;
  /** Rows present (stale copies included), rows no shard could give (UNAVAILABLE) and stale grace copies, as of the last read. */
  readonly found: number;
  readonly unavailable: number;
  readonly stale: number;
  /** Reads the missing keys through; shards that could not answer some go to `ctx.degraded`. */
  readRest(ctx: ReadContext): Promise<void>;
  /**
   * Reports every present row to `sink` under its index in the batch, as
   * `readRaw` does, and answers how many there were; or -1, reporting
   * nothing, when some row cannot be given as stored bytes (its shard could
   * not answer: UNAVAILABLE, or a stale grace copy), which `slots` carries.
   * The bytes are valid only during the call: report where the answer is
   * written, in the same synchronous step.
   */
  report(sink: RawRowSink): number;
  /** The read's slots as `getMany` would have answered them (rows decoded). */
  slots(): ReadSlot[];
}

/**
 * A key-value node holding StoredRows.
 *
 * Contract (see test/kv-contract.ts, run against every implementation):
 * - `getMany` answers slot i for keys[i]; a single node rejects when it cannot
 *   answer, composites return UNAVAILABLE for the affected slots instead.
 * - `getManyNow` answers the same slots synchronously when every key can be
 *   answered from memory, and `undefined` otherwise (then call `getMany`). A
 *   node whose `readsNow` is "never" always answers `undefined`; "always" never
 *   does. This is how a lookup whose keys are all in memory skips a promise
 *   per layer: composites (ring, cache tier, metrics) forward it explicitly.
 * - `putMany` is last-write-wins per key and atomic per key: a row whose `ts` is
 *   not strictly newer than the stored one is ignored, so replays and
 *   out-of-order events never regress a value. Within one batch, later entries
 *   for the same key compete by `ts` like separate writes.
 * - `deleteMany` answers how many keys existed.
 * - `rawNow`, when present, reports exactly the rows `getManyNow` answers, as
 *   their stored bytes.
 */
export interface KvNode {
  readonly id: string;
  readonly readsNow: ReadsNow;
  /**
   * Rows as bytes (see RawReader), or undefined when this node cannot: an
   * explicit capability every node states; composites derive theirs from
   * their parts (it may change with a ring's membership, so read it per call).
   */
  readonly rawNow: RawReader | undefined;
  getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]>;
  getManyNow(keys: readonly string[]): ReadSlot[] | undefined;
  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome>;
  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number>;
  /**
   * Iterates keys with the given prefix ("" for all); pass "0" to start. A
   * cursor that cannot go on where the next page is read (a Redis node whose
   * server process changed: a failover, a restart) throws ScanRestartError
   * (storage-errors.ts) rather than answer a page that skipped keys: the
   * caller scans again from "0" (scan-passes.ts). Composites pass it on.
   */
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage>;
  health(): Promise<NodeHealth>;
  close(): Promise<void>;
}

/**
 * What a shard offers on its primary alone, where a replica's lag cannot hide
 * a row: what moving keys between shards needs (shard/rebalance.ts) to copy
 * the newest row and delete only what was copied.
 */
export interface PrimaryAccess {
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]>;
  /** Deletes each key whose stored row is not newer than `ts`; answers the keys kept (newer). */
  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]>;
  /** Keys stored (DBSIZE). */
  size(): Promise<number>;
  /**
   * One SCAN page on the primary, with the server process that answered it
   * (read in the same MULTI as the SCAN). A SCAN cursor means something only to
   * the process that issued it (its hash seed and table size are its own): a
   * cursor handed to another process (a failover, a restart) skips keys.
   */
  scanPrimary(cursor: string, count: number): Promise<ProcessScanPage>;
  /** The primary's server process now (its address and `run_id`). */
  primaryProcess(): Promise<ServerProcess>;
}

/** One redis-server process: its address and `run_id` (INFO server), new at every start. */
export interface ServerProcess {
  readonly address: string;
  readonly runId: string;
}

/** A scan page and the process whose cursor `cursor` is. */
export interface ProcessScanPage extends ScanPage {
  readonly process: ServerProcess;
}

/** Combines parts' capabilities: "always" only if all are, "never" only if all are. */
export function combineReadsNow(parts: readonly ReadsNow[]): ReadsNow {
  if (parts.length > 0 && parts.every((p) => p === "always")) return "always";
  if (parts.every((p) => p === "never")) return "never";
  return "sometimes";
}

/** `getManyNow` for nodes that always need I/O. */
export function neverNow(): undefined {
  return undefined;
}
