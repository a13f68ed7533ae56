import { unavailable } from "../../src/errors/index.ts";
import { ForwardingKvNode } from "../../src/kv/forwarding-node.ts";
import type { KvEntry, PutOutcome } from "../../src/kv/kv-node.ts";

/**
 * A store that refuses writes while told to, as an open write breaker or a
 * shard answering 503 does: the `unavailable` (retryable) error.
 */
export class RefusingNode extends ForwardingKvNode {
  override readonly id = "refusing";
  refusing = true;
  refusedWrites = 0;
  /** Rows in the refused writes (independent of how the rows were batched). */
  refusedRows = 0;
  /** What a refused write fails with. */
  refusal: () => Error = () => unavailable("write breaker open");
  override putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (this.refusing) {
      this.refusedWrites++;
      this.refusedRows += entries.length;
      return Promise.reject(this.refusal());
    }
    return this.inner.putMany(entries, signal);
  }
}
