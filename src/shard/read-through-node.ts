import { ringKeyStart } from "../kv/keys.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { neverNow, UNAVAILABLE } from "../kv/kv-node.ts";
import { StorageError } from "../kv/storage-errors.ts";
import type { HashRing } from "../ring/ring.ts";

/** A read-through member's scan cursor: its previous owners are done, its own node comes next from the start. */
const OWN_START = "o";

/**
 * The cursor to hand `node` for a member's scan that began on a read-through
 * member: once the migration has ended and the member is its plain node again,
 * a cursor into the previous owners (or OWN_START) goes on from the own node's
 * start (every key is there by then). Own-node cursors pass through as they are.
 */
export function memberScanCursor(node: KvNode, cursor: string): string {
  return !(node instanceof ReadThroughNode) && (cursor === OWN_START || cursor.startsWith("p|")) ? "0" : cursor;
}

/**
 * A write refused because an old owner's rows could not be read: nothing was
 * written anywhere (the own node is written only after every read), so it says
 * it sent nothing (storage-errors.ts, Sent) and no cache floors or publishes
 * its keys. Code `unavailable`, retryable: the edges answer as before (503).
 */
const notWritten = (message: string, cause?: unknown): StorageError => new StorageError("unavailable", message, true, cause, "nothing");

/** The ring before a migration: who owned each key, and the node behind each member index. */
export interface PreviousRing {
  readonly ring: HashRing;
  readonly nodes: readonly KvNode[];
}

/**
 * A ring member while a migration runs. Reads go to the member's own node;
 * a miss there for a key that used to live elsewhere is looked up at its old
 * owner, so no key is unreadable while it moves. Writes land on the own node
 * only, but are held against the row wherever it is (putMany): one not newer
 * than the old owner's row is ignored, so last write wins across the move and
 * the migration's LWW copy never overwrites a row written here. Deletes also
 * hit the old owner, so a not-yet-copied row cannot come back.
 */
export class ReadThroughNode implements KvNode {
  /** Misses go to the previous owner, over I/O: never answered from memory alone. */
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  readonly id: string;
  private readonly own: KvNode;
  private readonly previous: PreviousRing;

  /** The previous ring's other nodes, scanned after this one for the keys this member owns now and has not received yet. */
  private readonly others: readonly KvNode[];

  constructor(
    id: string,
    own: KvNode,
    previous: PreviousRing,
    /** Does this member own `key` on the new ring? Without it a scan covers the own node only. */
    private readonly owns?: (key: string) => boolean,
  ) {
    this.id = id;
    this.own = own;
    this.previous = previous;
    this.others = owns === undefined ? [] : [...new Set(previous.nodes)].filter((n) => n !== own);
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

  /**
   * Last write wins against the row wherever it is. A key that used to live
   * on another node may not have been copied here yet: the own node's LWW
   * script alone compared a write with an empty slot, so an older event
   * overwrote the newer row still at the old owner, was answered written and
   * read back, and stayed in caches after the migration's copy put the newer
   * row back (an audit: 448 older-event-time pushes answered written during a
   * move; 318 of 2,000 keys still answered the older value from L1 20 s
   * after it ended). So the old owners' rows for the moving keys are read
   * first (one batched read per old owner, on its primary, in parallel), and a
   * write not newer than the old row is ignored, counted as the LWW script
   * counts its own. The rest go to the own node's LWW script, which holds them
   * against a copy that got here first; a copy that comes later is not newer
   * than what the old owner held when read, so it cannot overwrite them (the
   * migration copies before it deletes, so a key read as missing at its old
   * owner is here already, or nowhere). Only a row the old owner took later,
   * from a server still writing by the old ring, can be copied over one
   * written here: newer, and published by the pod that wrote it, so caches
   * hear of it as of any write. Keys that do not move cost nothing more, and
   * outside a migration no member is a ReadThroughNode. An old owner that cannot answer fails the write (retryable): written
   * blind, an older event could win again. Nothing is written then, and the error says so (notWritten).
   */
  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const keys = entries.map((e) => e.key);
    const groups = this.byPreviousOwner(keys, () => true);
    if (groups.size === 0) return this.own.putMany(entries, signal);
    const drop = new Uint8Array(entries.length); // 1: older than the old owner's row; 2: the same event time
    await Promise.all(
      [...groups].map(async ([node, positions]) => {
        let got: readonly ReadSlot[];
        try {
          got = await node.getMany(
            positions.map((p) => keys[p]!),
            { fromPrimary: true, ...(signal !== undefined ? { signal } : {}) },
          );
        } catch (error) {
          throw notWritten(`migration: the previous owner ${node.id} of keys written to ${this.id} could not be read (${(error as Error).message ?? error})`, error);
        }
        positions.forEach((p, j) => {
          const old = got[j];
          if (old === UNAVAILABLE) throw notWritten(`migration: the previous owner ${node.id} of keys written to ${this.id} could not be read`);
          if (old !== undefined && old.ts >= entries[p]!.row.ts) drop[p] = old.ts === entries[p]!.row.ts ? 2 : 1;
        });
      }),
    );
    const kept = entries.filter((_, i) => drop[i] === 0);
    const out = kept.length > 0 ? await this.own.putMany(kept, signal) : { written: 0, ignored: 0, sameTime: 0 };
    const ignored = entries.length - kept.length;
    if (ignored === 0) return out;
    let sameTime = 0;
    for (const d of drop) if (d === 2) sameTime++;
    return { written: out.written, ignored: out.ignored + ignored, sameTime: out.sameTime + sameTime };
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

  /**
   * The keys still at their previous owners that this member owns now, then
   * the own node's (a key caught mid-copy may come twice). The own node alone
   * missed every key not yet moved: a vector index catching up during a move
   * took them for deleted and dropped 500 of 500 claims, for good. Previous
   * owners first: a key copied here and deleted there between the two passes
   * is then found here (the copy comes before the delete); the other order
   * missed it. Cursors: `p|<other>|<its cursor>`, then OWN_START and the own
   * node's cursors as they are, so a scan begun before the migration goes on.
   */
  async scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    if (this.others.length > 0 && (cursor === "0" || cursor.startsWith("p|"))) {
      let index = 0;
      let inner = "0";
      if (cursor !== "0") {
        const bar = cursor.indexOf("|", 2);
        index = Number(cursor.slice(2, bar));
        inner = cursor.slice(bar + 1);
        if (bar < 0 || this.others[index] === undefined) throw new Error(`scan cursor "${cursor}" is not valid`);
      }
      const page = await this.others[index]!.scan(inner, count, prefix);
      const owns = this.owns!;
      const keys = page.keys.filter((k) => owns(k));
      if (page.cursor !== "0") return { cursor: `p|${index}|${page.cursor}`, keys };
      return { cursor: index + 1 < this.others.length ? `p|${index + 1}|0` : OWN_START, keys };
    }
    return this.own.scan(cursor === OWN_START ? "0" : cursor, count, prefix);
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
