import { ForwardingKvNode } from "../../src/kv/forwarding-node.ts";
import type { KvEntry, PutOutcome, RawReader, ReadContext, ReadSlot, ReadsNow } from "../../src/kv/kv-node.ts";
import { MemoryKvNode } from "../../src/kv/memory-node.ts";

/**
 * A store whose reads and writes, while `hung`, return promises nothing ever
 * settles (and that ignore their deadline): storage broken beyond every
 * timeout, for the edges' work bounds (src/api/work-bounds.ts). It never
 * answers from memory, so every lookup waits on it.
 */
export class HungNode extends ForwardingKvNode {
  hung = false;
  /** Reads and writes left hanging. */
  reads = 0;
  writes = 0;
  constructor() {
    super(new MemoryKvNode("hung"));
  }
  override get readsNow(): ReadsNow {
    return "never";
  }
  override getManyNow(_keys: readonly string[]): ReadSlot[] | undefined {
    return undefined;
  }
  override get rawNow(): RawReader | undefined {
    return undefined;
  }
  override getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    if (!this.hung) return this.inner.getMany(keys, ctx);
    this.reads++;
    return new Promise(() => {});
  }
  override putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (!this.hung) return this.inner.putMany(entries, signal);
    this.writes++;
    return new Promise(() => {});
  }
}
