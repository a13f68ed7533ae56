import { ForwardingKvNode } from "../kv/forwarding-node.ts";
import type { KvEntry, KvNode, PutOutcome } from "../kv/kv-node.ts";
import { storeMayHold } from "../kv/storage-errors.ts";
import type { ChangeEvent, ChangeFeed } from "./change-feed.ts";

/** One put event per entry, at its own event time. */
function putEvents(entries: readonly KvEntry[]): ChangeEvent[] {
  const events = new Array<ChangeEvent>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    events[i] = { key: e.key, ts: e.row.ts, op: "put" };
  }
  return events;
}

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

  /**
   * A write that failed is published too, as far as it may have landed: the
   * store writes each shard's share on its own and fails the call when any
   * share fails, so the others' rows may be stored. Unpublished, other pods
   * answered their L1 copies of those rows for their whole TTL while the
   * writing pod (which drops its own copies then) answered the new ones.
   * Published, a key whose row did not land is only read from the store
   * rather than from L1 until one does. Entries refused before anything was
   * sent (a shard whose write breaker is open, this server's ring stale:
   * storeMayHold) are not published: nothing changed for them, and published,
   * every pod dropped its copies, and while their shard was down answered
   * UNAVAILABLE for keys it held grace copies of.
   */
  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    let out: PutOutcome;
    try {
      out = await this.inner.putMany(entries, signal);
    } catch (error) {
      const landed = storeMayHold(error, entries);
      if (landed.length > 0) this.feed.publish(putEvents(landed));
      throw error;
    }
    this.feed.publish(putEvents(entries));
    return out;
  }

  override async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    try {
      return await this.inner.deleteMany(keys, signal);
    } finally {
      const ts = this.clock();
      this.feed.publish(keys.map((key): ChangeEvent => ({ key, ts, op: "delete" })));
    }
  }
}
