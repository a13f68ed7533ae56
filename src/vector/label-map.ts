/**
 * Labels ↔ storage keys. hnswlib identifies vectors by integer labels; this
 * map hands them out densely, remembers each live label's row event time (so
 * replays and catch-up skip rows the index already has), and recycles the
 * labels of deleted rows, so a deleted slot is reused by the next new key
 * instead of growing the index forever.
 */
export class LabelMap {
  private keys: (string | undefined)[] = [];
  private times: number[] = [];
  private readonly byKey = new Map<string, number>();
  private free: number[] = [];

  /** Live labels. */
  get size(): number {
    return this.byKey.size;
  }
  /** Labels handed out so far (live + free). */
  get slots(): number {
    return this.keys.length;
  }
  /** Removed labels waiting for reuse. */
  get freeCount(): number {
    return this.free.length;
  }

  labelOf(key: string): number | undefined {
    return this.byKey.get(key);
  }
  keyOf(label: number): string | undefined {
    return this.keys[label];
  }
  /** Event time of the row indexed under `label` (0 when none). */
  tsOf(label: number): number {
    return this.times[label] ?? 0;
  }

  /** The key's label, assigning one (a recycled one first) when it has none. */
  assign(key: string, ts: number): number {
    let label = this.byKey.get(key);
    if (label === undefined) {
      label = this.free.pop() ?? this.keys.length;
      this.byKey.set(key, label);
      this.keys[label] = key;
    }
    this.times[label] = ts;
    return label;
  }

  /** Forgets the key; answers its label (now free) or undefined when it had none. */
  release(key: string): number | undefined {
    const label = this.byKey.get(key);
    if (label === undefined) return undefined;
    this.byKey.delete(key);
    this.keys[label] = undefined;
    this.times[label] = 0;
    this.free.push(label);
    return label;
  }

  /** Live keys, for catch-up (which keys did the store lose?). */
  liveKeys(): IterableIterator<string> {
    return this.byKey.keys();
  }

  toJSON(): LabelMapJson {
    return { keys: this.keys.map((k) => k ?? null), times: this.times.slice(0, this.keys.length), free: [...this.free] };
  }

  static fromJSON(j: LabelMapJson): LabelMap {
    const m = new LabelMap();
    m.keys = j.keys.map((k) => k ?? undefined);
    m.times = j.times.slice();
    m.free = j.free.slice();
    for (let label = 0; label < m.keys.length; label++) {
      const k = m.keys[label];
      if (k !== undefined) m.byKey.set(k, label);
    }
    return m;
  }
}

export interface LabelMapJson {
  readonly keys: readonly (string | null)[];
  readonly times: readonly number[];
  readonly free: readonly number[];
}
