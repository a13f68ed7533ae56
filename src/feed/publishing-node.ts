import { ForwardingKvNode } from "../kv/forwarding-node.ts";
import type { KvEntry, KvNode, PutOutcome } from "../kv/kv-node.ts";
import type { ChangeEvent, ChangeFeed } from "./change-feed.ts";

/**
 * A KvNode that publishes every acknowledged write to the change feed: the
 * one place where "the store took it" turns into events. Entries the store
 * ignored under last-write-wins are published too (with their own event
 * time): subscribers compare times, and the alternative, asking the store
 * which rows won, would cost every write a second round trip. Reads pass
 * through unchanged.
 */
export class PublishingKvNode extends ForwardingKvNode {
  constructor(
    inner: KvNode,
    private readonly feed: ChangeFeed,
    private readonly clock: () => number = Date.now,
  ) {
    super(inner);
  }

  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const out = await this.inner.putMany(entries, signal);
    const events = new Array<ChangeEvent>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      events[i] = { key: e.key, ts: e.row.ts, op: "put" };
    }
    this.feed.publish(events);
    return out;
  }

  override async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    const n = await this.inner.deleteMany(keys, signal);
    const ts = this.clock();
    this.feed.publish(keys.map((key): ChangeEvent => ({ key, ts, op: "delete" })));
    return n;
  }
}
