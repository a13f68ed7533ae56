import { QuiverError } from "../errors/index.ts";
import type { KvEntry, KvNode, ReadSlot } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import type { PushService } from "../serving/index.ts";
import { RowEntities } from "../serving/index.ts";
import type { MappedGroup } from "./batch-mapper.ts";
import type { NewDeadLetter } from "./dead-letters.ts";
import { type IdempotencyWindow, scopedKey } from "./idempotency-window.ts";
import type { SourceCounters } from "./ingest-metrics.ts";
import type { Delivery } from "./stream-source.ts";

/** Rows ready for the store, with where each came from. */
export interface PreparedBatch {
  readonly entries: KvEntry[];
  readonly views: string[];
  /** Per entry, its view's version (idempotency keys are remembered per source scope and version: scopedKey). */
  readonly versions: number[];
  readonly idempotencyKeys: (string | undefined)[];
  /** Per entry, the delivery it came from (the deliveries whose rows go to the store). */
  readonly from: Delivery[];
  /** Rows the push path refused (type, key, future time): dead letters. */
  readonly dead: Array<{ readonly delivery: Delivery; readonly letter: NewDeadLetter }>;
  /** Events whose idempotency key an earlier event of the batch carried: duplicates, counted once the batch is written. */
  readonly repeated?: number;
}

/** Crash-testing hooks (the standalone CLI's `--fault-*` flags); both unset in normal runs. */
export interface WriteFault {
  /** Called after each store write, before the acknowledgement. */
  readonly afterWrite?: (written: number, writeNumber: number) => void;
  /** On this write (1-based) only the first half of the rows is written before `afterWrite`: a crash mid-batch. */
  readonly halfWriteAt?: number;
}

/** What the store did with a batch. */
export interface WriteResult {
  readonly written: number;
  readonly duplicate: number;
  readonly late: number;
}

const ROW_BASE = "event";

/**
 * The write half of a batch: validates rows through the same push path as the
 * HTTP API, then writes them as one last-write-wins batch, telling duplicates
 * (same entity and event time as stored, or repeated in the batch) from late
 * events (older than stored), which are counted and never written.
 */
export class BatchWriter {
  constructor(
    private readonly sourceName: string,
    /** The source's dedup scope (CompiledSource.dedupScope): the namespace of its idempotency keys. */
    private readonly dedupScope: string,
    private readonly push: PushService,
    private readonly store: KvNode,
    private readonly seen: IdempotencyWindow,
    private readonly counters: SourceCounters,
    private readonly clock: () => number,
    private readonly fault: WriteFault = {},
  ) {}

  private writes = 0;

  prepare(groups: readonly MappedGroup[]): PreparedBatch {
    const entries: KvEntry[] = [];
    const views: string[] = [];
    const versions: number[] = [];
    const idempotencyKeys: (string | undefined)[] = [];
    const dead: PreparedBatch["dead"] = [];
    /** The delivery each entry came from: an event dead-lettered for one view loses its rows for the others too. */
    const from: Delivery[] = [];
    const take = (group: MappedGroup, i: number, entry: KvEntry) => {
      entries.push(entry);
      views.push(group.mapping.view.name);
      versions.push(group.mapping.view.version);
      idempotencyKeys.push(group.rows[i]!.idempotencyKey);
      from.push(group.from[i]!);
    };
    for (const group of groups) {
      const { mapping, rows } = group;
      try {
        const prepared = this.push.prepare(mapping.view, new RowEntities(rows.map((r) => r.row), ROW_BASE), mapping.columns);
        for (let i = 0; i < prepared.length; i++) take(group, i, prepared[i]!);
        continue;
      } catch (e) {
        if (!(e instanceof QuiverError)) throw e;
      }
      // Some row is bad: find which, one at a time (only on this slow path).
      for (let i = 0; i < rows.length; i++) {
        try {
          const [entry] = this.push.prepare(mapping.view, new RowEntities([rows[i]!.row], ROW_BASE), mapping.columns);
          take(group, i, entry!);
        } catch (e) {
          if (!(e instanceof QuiverError)) throw e;
          const column = (e.path ?? "").slice((e.path ?? "").lastIndexOf(".") + 1);
          const path = mapping.pathOf(column);
          const detail = e.message.slice(e.message.indexOf(": ") + 2);
          const d = group.from[i]!;
          // Dead-letter the event once even when several of its mappings fail.
          if (!dead.some((x) => x.delivery === d)) {
            dead.push({ delivery: d, letter: { source: this.sourceName, reason: "invalid_value", path, error: `${path}: ${detail} (maps to "${column}")`, payload: d.payload, origin: d.id } });
          }
        }
      }
    }
    // An event goes to dead letters whole (as the mapper's refusals do): rows its other mappings made are not written.
    // Then an idempotency key repeated in the batch makes its later events duplicates - decided only now, so a
    // refused event's key does not hide the corrected copy sent after it.
    const refused = new Set(dead.map((x) => x.delivery));
    const repeated = this.repeatedKeys(views, idempotencyKeys, from, refused);
    if (refused.size === 0 && repeated.size === 0) return { entries, views, versions, idempotencyKeys, from, dead };
    const keep = (_: unknown, j: number) => !refused.has(from[j]!) && !repeated.has(from[j]!);
    return {
      entries: entries.filter(keep),
      views: views.filter(keep),
      versions: versions.filter(keep),
      idempotencyKeys: idempotencyKeys.filter(keep),
      from: from.filter(keep),
      dead,
      repeated: repeated.size,
    };
  }

  /** Events (not refused) whose idempotency key, for one of their views, an earlier event in the batch carried. */
  private repeatedKeys(views: readonly string[], keys: readonly (string | undefined)[], from: readonly Delivery[], refused: ReadonlySet<Delivery>): Set<Delivery> {
    const repeated = new Set<Delivery>();
    let claimed: Map<string, Delivery> | undefined;
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j];
      const d = from[j]!;
      if (key === undefined || refused.has(d)) continue;
      claimed ??= new Map();
      const scoped = `${views[j]}\u0000${key}`;
      const owner = claimed.get(scoped);
      if (owner === undefined) claimed.set(scoped, d);
      else if (owner !== d) repeated.add(d);
    }
    return repeated;
  }

  /** Reads what is stored, writes what is newer; throws the store's error (the caller retries). */
  async write(batch: PreparedBatch, signal?: AbortSignal): Promise<WriteResult> {
    const { entries } = batch;
    // The newest entry per key in this batch; the others are duplicates or late already.
    const best = new Map<string, number>();
    let duplicate = 0;
    let late = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const j = best.get(e.key);
      if (j === undefined) {
        best.set(e.key, i);
        continue;
      }
      const other = entries[j]!;
      if (e.row.ts > other.row.ts) {
        best.set(e.key, i);
        late++;
      } else if (e.row.ts === other.row.ts) duplicate++;
      else late++;
    }
    const candidates = [...best.values()];
    const keys = candidates.map((i) => entries[i]!.key);
    const stored: ReadSlot[] = this.store.getManyNow(keys) ?? (await this.store.getMany(keys, signal ? { signal } : undefined));
    const toWrite: KvEntry[] = [];
    const toWriteIndex: number[] = [];
    for (let c = 0; c < candidates.length; c++) {
      const i = candidates[c]!;
      const slot = stored[c];
      const ts = entries[i]!.row.ts;
      if (slot !== undefined && slot !== UNAVAILABLE && slot.ts >= ts) {
        if (slot.ts === ts) duplicate++;
        else late++;
        continue;
      }
      toWrite.push(entries[i]!);
      toWriteIndex.push(i);
    }
    let written = 0;
    if (toWrite.length > 0) {
      const n = ++this.writes;
      const rows = this.fault.halfWriteAt === n ? toWrite.slice(0, Math.ceil(toWrite.length / 2)) : toWrite;
      const outcome = await this.push.write(rows, signal);
      written = outcome.written;
      // Rows the store kept its own copy of: another writer got there between our read and write, or the read
      // could not tell us (UNAVAILABLE) and the row was there already. The same event time is a replay.
      duplicate += outcome.sameTime;
      late += outcome.ignored - outcome.sameTime;
      this.fault.afterWrite?.(written, n);
      const now = this.clock();
      for (let k = 0; k < toWriteIndex.length; k++) {
        const i = toWriteIndex[k]!;
        this.counters.freshness(batch.views[i]!).observe(Math.max(0, now - entries[i]!.row.ts) / 1000);
      }
    }
    for (let i = 0; i < entries.length; i++) {
      const key = batch.idempotencyKeys[i];
      if (key !== undefined) this.seen.remember(batch.views[i]!, scopedKey(this.dedupScope, batch.versions[i]!, key));
    }
    return { written, duplicate, late };
  }
}
