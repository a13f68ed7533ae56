import type { KvEntry, KvNode, NodeHealth, PutOutcome, RawReader, ReadContext, ReadSlot, ReadsNow, ScanPage } from "./kv-node.ts";

/**
 * A composite that forwards every KvNode member to the node it wraps, so a
 * wrapper overrides only what it changes and cannot forget a capability
 * (`readsNow` / `getManyNow` included). Hot-path wrappers that precompute
 * their read path at construction (the ring, the metrics wrapper, the cache
 * tier) implement KvNode directly instead.
 */
export class ForwardingKvNode implements KvNode {
  readonly id: string;

  constructor(protected readonly inner: KvNode) {
    this.id = inner.id;
  }

  /** The inner node's, read live: a ring's capability can change with its membership. */
  get readsNow(): ReadsNow {
    return this.inner.readsNow;
  }
  getManyNow(keys: readonly string[]): ReadSlot[] | undefined {
    return this.inner.getManyNow(keys);
  }
  get rawNow(): RawReader | undefined {
    return this.inner.rawNow;
  }
  getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    return this.inner.getMany(keys, ctx);
  }
  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    return this.inner.putMany(entries, signal);
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
