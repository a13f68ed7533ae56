import type { StoredRow } from "../kv/kv-node.ts";

/** What one L2 read found for one key: a row, "the origin has none" (a cached negative), or nothing cached. */
export const L2_NEGATIVE = 0;
export type L2Slot = StoredRow | typeof L2_NEGATIVE | undefined;

/** What `read` answers when it did not ask L2 (re-reading generations, or L2 not answering between probes): misses, not an error. */
export const L2_NOT_ASKED = "not-asked";

/** A row to write to L2, or `row: undefined` for a negative entry. */
export interface L2Write {
  readonly key: string;
  readonly row: StoredRow | undefined;
}

/** The L2 tier as the cache tier uses it (implemented over Redis by L2Store). */
export interface L2Tier {
  /** Each key's slot; undefined when L2 failed (down, slower than its bound); L2_NOT_ASKED when it was not asked. */
  read(keys: readonly string[]): Promise<L2Slot[] | typeof L2_NOT_ASKED | undefined>;
  /** Rows a read found, under the generations this pod uses (a read that an invalidation overtook fills nothing). */
  write(entries: readonly L2Write[]): Promise<boolean>;
  /** Rows the origin acknowledged, under the newest generations L2 or this pod knows: where every pod reads. */
  writeThrough(entries: readonly L2Write[]): Promise<boolean>;
  /** Leaves a floor at each entry's event time (refusing older fills, read as a miss) unless a newer copy is held; placed as writeThrough's rows are. */
  supersede(entries: readonly { readonly key: string; readonly row: { readonly ts: number } }[]): Promise<boolean>;
  remove(keys: readonly string[]): Promise<boolean>;
  bumpGeneration(scope: { readonly view: string } | { readonly all: true }): Promise<void>;
  syncGenerations(): Promise<boolean>;
  /**
   * Calls `listener` with each scope whose generation this pod found raised
   * outside an invalidation it heard of (its periodic check): what L1 read
   * under the old one must go.
   */
  onGenerationRaised(listener: (scope: { readonly view: string } | { readonly all: true }) => void): void;
  state(): { address: string; connected: boolean; error?: string };
  /** The L2 server's memory use, budget and LRU evictions, as last read; and the entries read that were not rows (served as misses). */
  stats(): { usedBytes: number; maxBytes: number; evictedKeys: number; unreadableEntries: number };
  close(): Promise<void>;
}
