import type { KvEntry, KvNode, NodeHealth, PutOutcome, RawReader, RawRowSink, ReadContext, ReadSlot, ReadsNow, ScanPage, ThroughRows } from "../kv/kv-node.ts";
import type { KeyBatch } from "../kv/key-batch.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import type { CounterHandle, HistogramHandle, MetricsRegistry } from "./metrics.ts";

/**
 * Counts and times the storage calls the serving path makes, as a KvNode
 * around the store, so /metrics shows store operations without the store
 * implementations knowing about metrics.
 */
export class MeteredKvNode implements KvNode {
  readonly id: string;
  private readonly getLatency: HistogramHandle;
  private readonly putLatency: HistogramHandle;
  private readonly gets: CounterHandle;
  private readonly puts: CounterHandle;
  private readonly getErrors: CounterHandle;
  private readonly putErrors: CounterHandle;
  private readonly keysRead: CounterHandle;
  private readonly keysMissing: CounterHandle;
  private readonly keysUnavailable: CounterHandle;
  private readonly rowsWritten: CounterHandle;
  private readonly rowsIgnored: CounterHandle;
  private readonly fallbackDefault: CounterHandle;
  private readonly fallbackStale: CounterHandle;
  /** Reads answered now are metered like awaited ones; "never" skips the timer entirely. */
  readonly getManyNow: (keys: readonly string[]) => ReadSlot[] | undefined;

  constructor(
    private readonly inner: KvNode,
    metrics: MetricsRegistry,
  ) {
    this.id = inner.id;
    const latency = metrics.histogram("quiver_store_operation_duration_seconds", "Storage call latency by operation.", ["op"]);
    const ops = metrics.counter("quiver_store_operations_total", "Storage calls by operation and outcome.", ["op", "outcome"]);
    const keys = metrics.counter("quiver_store_keys_total", "Keys read by result, rows written by outcome.", ["op", "result"]);
    this.getLatency = latency.labels("get");
    this.putLatency = latency.labels("put");
    this.gets = ops.labels("get", "ok");
    this.puts = ops.labels("put", "ok");
    this.getErrors = ops.labels("get", "error");
    this.putErrors = ops.labels("put", "error");
    this.keysRead = keys.labels("get", "found");
    this.keysMissing = keys.labels("get", "missing");
    this.keysUnavailable = keys.labels("get", "unavailable");
    this.rowsWritten = keys.labels("put", "written");
    this.rowsIgnored = keys.labels("put", "ignored");
    const fallbacks = metrics.counter("quiver_lookup_fallbacks_total", "Rows served without a fresh stored value because storage could not answer, by kind: default (UNAVAILABLE) or stale (a cache's grace copy).", ["kind"]);
    this.fallbackDefault = fallbacks.labels("default");
    this.fallbackStale = fallbacks.labels("stale");
    this.getManyNow =
      inner.readsNow === "never"
        ? () => undefined
        : (keys) => {
            const start = performance.now();
            const slots = inner.getManyNow(keys);
            if (slots !== undefined) this.recordRead(start, slots);
            return slots;
          };
  }

  /** The inner node's, read live: a ring's capability can change with its membership. */
  get readsNow(): ReadsNow {
    return this.inner.readsNow;
  }

  /** The inner node's raw reads, metered like any read (one operation, keys found and missing). */
  get rawNow(): RawReader | undefined {
    const inner = this.inner.rawNow;
    if (inner === undefined) return undefined;
    if (this.rawInner !== inner) {
      this.rawInner = inner;
      const through = inner.readThrough;
      this.rawMetered = {
        readRaw: (keys, picks, from, to, sink) => this.readRawMetered(inner, keys, picks, from, to, sink),
        readThrough: through === undefined ? undefined : (keys) => this.readThroughMetered(through, keys),
      };
    }
    return this.rawMetered;
  }

  private rawInner: RawReader | undefined;
  private rawMetered: RawReader | undefined;

  private readRawMetered(inner: RawReader, keys: KeyBatch, picks: Int32Array, from: number, to: number, sink: RawRowSink): number {
    const start = performance.now();
    const found = inner.readRaw(keys, picks, from, to, sink);
    // Not answered now: the caller reads through getMany, which is metered.
    if (found < 0) return found;
    this.getLatency.observe((performance.now() - start) / 1000);
    this.gets.inc();
    this.keysRead.inc(found);
    this.keysMissing.inc(to - from - found);
    return found;
  }

  /**
   * A read-through raw read, metered as the `getMany` it stands for: one
   * read, timed to its end, its keys counted by result. A pass that found
   * every key is metered at once; otherwise when the rest has been read.
   */
  private readThroughMetered(through: (keys: KeyBatch) => ThroughRows, keys: KeyBatch): ThroughRows {
    const start = performance.now();
    const rows = through(keys);
    if (rows.missing === 0) {
      this.recordThrough(start, rows);
      return rows;
    }
    return new MeteredRest(rows, start, this.recordThroughOf, this.getErrors);
  }

  private readonly recordThroughOf = (start: number, rows: ThroughRows) => this.recordThrough(start, rows);

  private recordThrough(start: number, rows: ThroughRows): void {
    this.getLatency.observe((performance.now() - start) / 1000);
    this.gets.inc();
    this.recordKeys(rows.count, rows.found, rows.unavailable, rows.stale);
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    const start = performance.now();
    let slots: ReadSlot[];
    try {
      slots = await this.inner.getMany(keys, ctx);
    } catch (e) {
      this.getErrors.inc();
      throw e;
    }
    this.recordRead(start, slots);
    return slots;
  }

  private recordRead(start: number, slots: readonly ReadSlot[]): void {
    this.getLatency.observe((performance.now() - start) / 1000);
    this.gets.inc();
    this.countKeys(slots);
  }

  /** A read's keys by result, and the fallbacks its UNAVAILABLE and stale slots stand for. */
  private countKeys(slots: readonly ReadSlot[]): void {
    let found = 0;
    let unavailable = 0;
    let stale = 0;
    for (const s of slots) {
      if (s === UNAVAILABLE) unavailable++;
      else if (s !== undefined) {
        found++;
        if (s.stale === true) stale++;
      }
    }
    this.recordKeys(slots.length, found, unavailable, stale);
  }

  private recordKeys(count: number, found: number, unavailable: number, stale: number): void {
    if (unavailable > 0) this.fallbackDefault.inc(unavailable);
    if (stale > 0) this.fallbackStale.inc(stale);
    this.keysRead.inc(found);
    this.keysUnavailable.inc(unavailable);
    this.keysMissing.inc(count - found - unavailable);
  }

  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const start = performance.now();
    let out: PutOutcome;
    try {
      out = await this.inner.putMany(entries, signal);
    } catch (e) {
      this.putErrors.inc();
      throw e;
    }
    this.putLatency.observe((performance.now() - start) / 1000);
    this.puts.inc();
    this.rowsWritten.inc(out.written);
    this.rowsIgnored.inc(out.ignored);
    return out;
  }

  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    return this.inner.deleteMany(keys, signal);
  }
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.inner.scan(cursor, count, prefix);
  }
  health(): Promise<NodeHealth> {
    return this.inner.health();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A read-through raw read whose rest is still to be read: metered once it has been (MeteredKvNode.readThroughMetered). */
class MeteredRest implements ThroughRows {
  constructor(
    private readonly inner: ThroughRows,
    private readonly start: number,
    private readonly record: (start: number, rows: ThroughRows) => void,
    private readonly errors: CounterHandle,
  ) {}

  get count(): number {
    return this.inner.count;
  }
  get missing(): number {
    return this.inner.missing;
  }
  get found(): number {
    return this.inner.found;
  }
  get unavailable(): number {
    return this.inner.unavailable;
  }
  get stale(): number {
    return this.inner.stale;
  }

  async readRest(ctx: ReadContext): Promise<void> {
    try {
      await this.inner.readRest(ctx);
    } catch (e) {
      this.errors.inc();
      throw e;
    }
    this.record(this.start, this.inner);
  }

  report(sink: RawRowSink): number {
    return this.inner.report(sink);
  }

  slots(): ReadSlot[] {
    return this.inner.slots();
  }
}
