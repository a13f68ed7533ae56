import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadSlot, ScanPage, StoredRow } from "./kv-node.ts";

const MAX_OPEN_SCANS = 16;

/**
 * An in-process node: a Map from key to row. Rows are kept by reference (they
 * are immutable), so a read hands back the stored object with no copy or decode.
 */
export class MemoryKvNode implements KvNode {
  private readonly rows = new Map<string, StoredRow>();
  private closed = false;
  private readonly scans = new Map<number, string[]>();
  private scanSeq = 0;

  constructor(readonly id: string) {}

  /** Number of keys held, for metrics and tests. */
  get size(): number {
    return this.rows.size;
  }

  readonly readsNow = "always";
  readonly rawNow = undefined;

  getMany(keys: readonly string[]): Promise<ReadSlot[]> {
    return Promise.resolve(this.getManyNow(keys));
  }

  /** Synchronous read: every key is in process memory. */
  getManyNow(keys: readonly string[]): ReadSlot[] {
    const out = new Array<ReadSlot>(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.rows.get(keys[i]!);
    return out;
  }

  putMany(entries: readonly KvEntry[]): Promise<PutOutcome> {
    return Promise.resolve(this.putManySync(entries));
  }

  /**
   * Applies last-write-wins; returns the entries that were stored, for durable
   * wrappers. `tally` counts the skipped ones whose stored event time was the
   * same (PutOutcome.sameTime).
   */
  applyWinners(entries: readonly KvEntry[], tally?: { sameTime: number }): KvEntry[] {
    const winners: KvEntry[] = [];
    for (const e of entries) {
      const old = this.rows.get(e.key);
      if (old === undefined || e.row.ts > old.ts) {
        this.rows.set(e.key, e.row);
        winners.push(e);
      } else if (tally !== undefined && e.row.ts === old.ts) tally.sameTime++;
    }
    return winners;
  }

  putManySync(entries: readonly KvEntry[]): PutOutcome {
    const tally = { sameTime: 0 };
    const written = this.applyWinners(entries, tally).length;
    return { written, ignored: entries.length - written, sameTime: tally.sameTime };
  }

  /** Loads rows without comparing timestamps: for restoring from a durable log. */
  restore(key: string, row: StoredRow): void {
    const old = this.rows.get(key);
    if (old === undefined || row.ts > old.ts) this.rows.set(key, row);
  }

  deleteMany(keys: readonly string[]): Promise<number> {
    let n = 0;
    for (const k of keys) if (this.rows.delete(k)) n++;
    return Promise.resolve(n);
  }

  /**
   * Scans a snapshot of the matching keys taken when the scan starts, so
   * deletes and inserts during the scan (a migration does both) never make it
   * skip a key that existed at the start. Cursor = `<scan id>:<offset>`.
   */
  scan(cursor: string, count: number, prefix = ""): Promise<ScanPage> {
    let id: number;
    let offset: number;
    let snapshot: string[] | undefined;
    if (cursor === "0") {
      id = ++this.scanSeq;
      offset = 0;
      snapshot = [];
      for (const k of this.rows.keys()) if (k.startsWith(prefix)) snapshot.push(k);
      this.scans.set(id, snapshot);
      // Abandoned scans must not pin memory forever: keep the newest few.
      if (this.scans.size > MAX_OPEN_SCANS) this.scans.delete(this.scans.keys().next().value as number);
    } else {
      const [a, b] = cursor.split(":");
      id = Number(a);
      offset = Number(b);
      snapshot = this.scans.get(id);
      if (!snapshot || !Number.isInteger(offset)) return Promise.reject(new Error(`scan cursor "${cursor}" is unknown or expired`));
    }
    const end = Math.min(snapshot.length, offset + Math.max(1, count));
    const keys = snapshot.slice(offset, end);
    if (end >= snapshot.length) {
      this.scans.delete(id);
      return Promise.resolve({ cursor: "0", keys });
    }
    return Promise.resolve({ cursor: `${id}:${end}`, keys });
  }

  health(): Promise<NodeHealth> {
    return Promise.resolve({ id: this.id, ok: !this.closed, detail: { kind: "memory", keys: this.rows.size } });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
