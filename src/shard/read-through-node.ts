import { ringKeyStart } from "../kv/keys.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { neverNow, UNAVAILABLE } from "../kv/kv-node.ts";
import type { HashRing } from "../ring/ring.ts";

/** The ring before a migration: who owned each key, and the node behind each member index. */
export interface PreviousRing {
  readonly ring: HashRing;
  readonly nodes: readonly KvNode[];
}

/**
 * A ring member while a migration runs. Reads go to the member's own node;
 * a miss there for a key that used to live elsewhere is looked up at its old
 * owner, so no key is unreadable while it moves. Writes go to the own node
 * only (the migration's LWW copy never overwrites them); deletes also hit the
 * old owner, so a not-yet-copied row cannot come back.
 */
export class ReadThroughNode implements KvNode {
  /** Misses go to the previous owner, over I/O: never answered from memory alone. */
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  readonly id: string;
  private readonly own: KvNode;
  private readonly previous: PreviousRing;

  constructor(id: string, own: KvNode, previous: PreviousRing) {
    this.id = id;
    this.own = own;
    this.previous = previous;
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    const rows = await this.own.getMany(keys, ctx);
    const groups = this.byPreviousOwner(keys, (i) => rows[i] === undefined);
    if (groups.size === 0) return rows;
    const retry: number[] = [];
    await Promise.all(
      [...groups].map(async ([node, positions]) => {
        let got: readonly ReadSlot[];
        try {
          got = await node.getMany(
            positions.map((p) => keys[p]!),
            ctx,
          );
        } catch {
          got = positions.map(() => UNAVAILABLE);
        }
        positions.forEach((p, j) => {
          rows[p] = got[j];
          if (got[j] === undefined) retry.push(p);
        });
      }),
    );
    if (retry.length > 0) {
      // Missing at both: the migration may have copied then deleted it between our two reads (copy comes first).
      const again = await this.own.getMany(
        retry.map((p) => keys[p]!),
        ctx,
      );
      retry.forEach((p, j) => {
        rows[p] = again[j];
      });
    }
    return rows;
  }

  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    return this.own.putMany(entries, signal);
  }

  /** Deletes here and at old owners; the count may include a key twice if it was caught mid-copy. */
  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    const groups = this.byPreviousOwner(keys, () => true);
    const counts = await Promise.all([
      this.own.deleteMany(keys, signal),
      ...[...groups].map(([node, positions]) =>
        node.deleteMany(
          positions.map((p) => keys[p]!),
          signal,
        ),
      ),
    ]);
    return counts.reduce((a, b) => a + b, 0);
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.own.scan(cursor, count, prefix);
  }

  health(): Promise<NodeHealth> {
    return this.own.health();
  }

  close(): Promise<void> {
    return this.own.close();
  }

  /** Positions (matching `want`) whose previous owner is another node, grouped by that node. */
  private byPreviousOwner(keys: readonly string[], want: (i: number) => boolean): Map<KvNode, number[]> {
    const groups = new Map<KvNode, number[]>();
    for (let i = 0; i < keys.length; i++) {
      if (!want(i)) continue;
      const node = this.previous.nodes[this.previous.ring.ownerIndexOf(keys[i]!, ringKeyStart(keys[i]!))];
      if (!node || node === this.own) continue;
      const list = groups.get(node);
      if (list) list.push(i);
      else groups.set(node, [i]);
    }
    return groups;
  }
}
