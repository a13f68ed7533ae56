import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ReadsNow, ScanPage } from "../kv/kv-node.ts";
import type { ChangeEvent, ChangeFeed } from "./change-feed.ts";

/**
 * A KvNode that publishes every acknowledged write to the change feed: the
 * one place where "the store took it" turns into events. Entries the store
 * ignored under last-write-wins are published too (with their own event
 * time): subscribers compare times, and the alternative, asking the store
 * which rows won, would cost every write a second round trip.
 */
export class PublishingKvNode implements KvNode {
  readonly id: string;
  readonly getManyNow: (keys: readonly string[]) => ReadSlot[] | undefined;

  constructor(
    private readonly inner: KvNode,
    private readonly feed: ChangeFeed,
    private readonly clock: () => number = Date.now,
  ) {
    this.id = inner.id;
    this.getManyNow = (keys) => inner.getManyNow(keys);
  }

  get readsNow(): ReadsNow {
    return this.inner.readsNow;
  }

  getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    return this.inner.getMany(keys, ctx);
  }

  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const out = await this.inner.putMany(entries, signal);
    const events = new Array<ChangeEvent>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      events[i] = { key: e.key, ts: e.row.ts, op: "put" };
    }
    this.feed.publish(events);
    return out;
  }

  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    const n = await this.inner.deleteMany(keys, signal);
    const ts = this.clock();
    this.feed.publish(keys.map((key): ChangeEvent => ({ key, ts, op: "delete" })));
    return n;
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
