import { ForwardingKvNode } from "../kv/forwarding-node.ts";
import type { KvEntry, KvNode, PutOutcome } from "../kv/kv-node.ts";
import { StorageError } from "../kv/storage-errors.ts";

/**
 * The writers' view of a sharded store (pushes, streaming writers): writes are
 * refused while this server's ring is not where the shards' keys are
 * (ConnectedShards.placementProblem: another server moved them). Written
 * anyway, a row would land on the shard this ring names, where readers on the
 * keys' ring never look, and its acknowledgement would be a lie. Refused as a
 * retryable storage error: a push answers 503 + Retry-After, a streaming
 * writer hands its batch back and pauses, until the server is reloaded on the
 * new topology. Reads pass (lookups go through their own, unwrapped node).
 */
export class PlacementGateNode extends ForwardingKvNode {
  constructor(
    inner: KvNode,
    private readonly problem: () => string | undefined,
  ) {
    super(inner);
  }

  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    this.check();
    return this.inner.putMany(entries, signal);
  }

  override async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    this.check();
    return this.inner.deleteMany(keys, signal);
  }

  private check(): void {
    const why = this.problem();
    // Refused before anything was sent: no cache or change feed reacts to it (storage-errors.ts, Sent).
    if (why !== undefined) throw new StorageError("placement_stale", `not written: ${why}`, true, undefined, "nothing");
  }
}
