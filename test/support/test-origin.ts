import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../../src/kv/kv-node.ts";

/**
 * An origin for cache tests around a real node: counts reads, can hold reads
 * at a gate (to make requests overlap) and can answer UNAVAILABLE like a ring
 * whose shard is down. Not a mock of storage: the rows live in `inner`.
 */
export class TestOrigin implements KvNode {
  readonly id = "origin";
  readonly readsNow = "never";
  reads = 0;
  keysRead = 0;
  down = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(readonly inner: KvNode) {}

  getManyNow(): undefined {
    return undefined;
  }

  /** Holds every read until `release()`. */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    this.reads++;
    this.keysRead += keys.length;
    if (this.gate) await this.gate;
    if (this.down) {
      ctx?.degraded?.push("shard-1");
      return keys.map(() => UNAVAILABLE);
    }
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
