import { ringKeyStart } from "../kv/keys.ts";
import type { KeyBatch } from "../kv/key-batch.ts";
import {
  type KvEntry,
  type KvNode,
  type NodeHealth,
  type PutOutcome,
  type RawReader,
  type RawRowSink,
  type ReadContext,
  type ReadSlot,
  type ScanPage,
  combineReadsNow,
  type ReadsNow,
  UNAVAILABLE,
} from "../kv/kv-node.ts";
import { BudgetSpentError, ScanRestartError, StoreWriteError, storeMayHold } from "../kv/storage-errors.ts";
import { HashRing } from "../ring/ring.ts";
import { memberScanCursor, ReadThroughNode } from "../shard/read-through-node.ts";

/** A node on the ring: its id (also its ring identity), weight and the KvNode behind it. */
export interface ShardMember {
  readonly id: string;
  readonly weight: number;
  readonly node: KvNode;
}

/** Keys of one request that one node owns, with their positions in the request. */
interface KeyGroup {
  readonly owner: number;
  readonly node: KvNode;
  readonly keys: string[];
  readonly positions: number[];
}

export interface ShardedStoreOptions {
  readonly vnodesPerNode?: number;
}

/**
 * The whole storage tier as one KvNode: routes each key by the consistent-hash
 * ring on its entity part, so all views of an entity share a node, and sends
 * one batch per node per call. A node that fails a read yields UNAVAILABLE for
 * its keys only; the rest of the batch is still answered.
 */
export class ShardedStore implements KvNode {
  readonly id: string;
  private ringRef: HashRing;
  private nodes: KvNode[];
  private readsNowRef: ReadsNow;
  /** Chosen per membership: a single owner's reader, or group-then-read, or `neverNow`. */
  private nowPath: (keys: readonly string[]) => ReadSlot[] | undefined;
  /** Present when every member hands rows over as bytes (chosen per membership). */
  private rawRef: RawReader | undefined;
  /** Writes in flight, each routed by the ring of its start (see writesSettled). */
  private readonly writing = new Set<Promise<unknown>>();
  /** Counts membership changes that a scan may not go on across (see scan). */
  private membership = 0;
  /** Some member reads through to the keys' old owners (a migration runs): see `migrating`. */
  private migratingRef = false;

  constructor(members: readonly ShardMember[], options: ShardedStoreOptions & { id?: string } = {}) {
    if (members.length === 0) throw new Error("store: at least one shard is required");
    this.id = options.id ?? "ring";
    this.ringRef = new HashRing(members, { vnodesPerNode: options.vnodesPerNode ?? 160 });
    this.nodes = members.map((m) => m.node);
    this.migratingRef = this.nodes.some((n) => n instanceof ReadThroughNode);
    this.readsNowRef = combineReadsNow(this.nodes.map((n) => n.readsNow));
    this.nowPath = this.choosePath();
    this.rawRef = this.chooseRaw();
  }

  /** Derived from the members; a membership change may change it. */
  get readsNow(): ReadsNow {
    return this.readsNowRef;
  }

  get ring(): HashRing {
    return this.ringRef;
  }

  /** The KvNodes in ring-member order. */
  get members(): readonly ShardMember[] {
    return this.ringRef.members.map((m, i) => ({ id: m.id, weight: m.weight, node: this.nodes[i]! }));
  }

  /** The node that owns `key` now. */
  nodeFor(key: string): KvNode {
    return this.nodes[this.ringRef.ownerIndexOf(key, ringKeyStart(key))]!;
  }

  /**
   * Replaces membership; used by rebalancing to start a migration and once data
   * has moved. A scan begun before is asked to start again (see scan) unless
   * `scansGoOn`: the end of a migration, whose members are the same nodes
   * unwrapped (memberScanCursor), every key at its owner.
   */
  setMembers(members: readonly ShardMember[], options: { readonly scansGoOn?: boolean } = {}): void {
    if (members.length === 0) throw new Error("store: at least one shard is required");
    const ring = new HashRing(members, { vnodesPerNode: this.ringRef.vnodesPerNode });
    if (options.scansGoOn !== true) this.membership++;
    this.nodes = members.map((m) => m.node);
    this.migratingRef = this.nodes.some((n) => n instanceof ReadThroughNode);
    this.ringRef = ring;
    this.readsNowRef = combineReadsNow(this.nodes.map((n) => n.readsNow));
    this.nowPath = this.choosePath();
    this.rawRef = this.chooseRaw();
  }

  /**
   * True while a migration runs (members read through to the keys' old
   * owners). A read then answers a moving key from its new owner first, where
   * a row the migration copied can hide a newer one put at the old owner since
   * (by a server still writing through the old ring) until the migration
   * copies that one too: a read may answer an older row than an earlier read
   * did, with no write lost.
   */
  get migrating(): boolean {
    return this.migratingRef;
  }

  /** Rows as bytes when every member can (a member being migrated through a read-through node cannot). */
  get rawNow(): RawReader | undefined {
    return this.rawRef;
  }

  private chooseRaw(): RawReader | undefined {
    const readers: RawReader[] = [];
    for (const n of this.nodes) {
      const r = n.rawNow;
      if (r === undefined) return undefined;
      readers.push(r);
    }
    if (readers.length === 1) return readers[0]!;
    return new RoutedRawReader(this.ringRef, readers);
  }

  /** Answers from memory when every owning node can; `undefined` as soon as one cannot. */
  getManyNow(keys: readonly string[]): ReadSlot[] | undefined {
    return this.nowPath(keys);
  }

  private choosePath(): (keys: readonly string[]) => ReadSlot[] | undefined {
    if (this.readsNowRef === "never") return () => undefined;
    const nodes = this.nodes;
    if (nodes.length === 1) {
      const only = nodes[0]!;
      return (keys) => only.getManyNow(keys);
    }
    return (keys) => {
      if (keys.length === 1) return nodes[this.ringRef.ownerIndexOf(keys[0]!, ringKeyStart(keys[0]!))]!.getManyNow(keys);
      const out = new Array<ReadSlot>(keys.length);
      for (const g of this.group(keys)) {
        const got = g.node.getManyNow(g.keys);
        if (got === undefined) return undefined;
        for (let j = 0; j < g.positions.length; j++) out[g.positions[j]!] = got[j];
      }
      return out;
    };
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    if (keys.length === 0) return [];
    const groups = this.group(keys);
    if (groups.length === 1) {
      const g = groups[0]!;
      try {
        return await g.node.getMany(keys, ctx);
      } catch (e) {
        // A shard the lookup never asked (its budget was spent waiting for a slot) is not degraded.
        if (!(e instanceof BudgetSpentError)) ctx?.degraded?.push(g.node.id);
        return new Array<ReadSlot>(keys.length).fill(UNAVAILABLE);
      }
    }
    const out = new Array<ReadSlot>(keys.length);
    await Promise.all(
      groups.map(async (g) => {
        let got: readonly ReadSlot[] | undefined;
        try {
          got = await g.node.getMany(g.keys, ctx);
        } catch (e) {
          if (!(e instanceof BudgetSpentError)) ctx?.degraded?.push(g.node.id);
          got = undefined;
        }
        for (let j = 0; j < g.positions.length; j++) out[g.positions[j]!] = got ? got[j] : UNAVAILABLE;
      }),
    );
    return out;
  }

  /**
   * Resolves once every write (put or delete) begun before this call has
   * settled, written or failed. A write is routed by the ring of its start and
   * its node's policy retries it (through a failover window of 10 s): after
   * `setMembers`, rebalancing waits here so no write routed by the old ring
   * lands on an old owner after that key's page was scanned.
   */
  async writesSettled(): Promise<void> {
    await Promise.allSettled([...this.writing]);
  }

  /** Adds `work` to the writes in flight until it settles. */
  private track<T>(work: Promise<T>): Promise<T> {
    this.writing.add(work);
    const settled = (): void => {
      this.writing.delete(work);
    };
    work.then(settled, settled);
    return work;
  }

  /**
   * Writes each node's share as one batch. If any node fails, the call fails
   * with a retryable StoreWriteError naming the entries that may be stored
   * (the shares written, and those whose failure may have landed; not those a
   * node refused before sending anything); shares already written stay
   * (retrying is safe: writes are last-write-wins).
   */
  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    return this.track(this.putRouted(entries, signal));
  }

  private async putRouted(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return { written: 0, ignored: 0, sameTime: 0 };
    const byNode = new Map<number, KvEntry[]>();
    for (const e of entries) {
      const owner = this.ringRef.ownerIndexOf(e.key, ringKeyStart(e.key));
      let list = byNode.get(owner);
      if (!list) {
        list = [];
        byNode.set(owner, list);
      }
      list.push(e);
    }
    const shares = [...byNode];
    const results = await Promise.allSettled(shares.map(([owner, list]) => this.nodes[owner]!.putMany(list, signal)));
    const total: PutOutcome = { written: 0, ignored: 0, sameTime: 0 };
    let failed = false;
    for (const r of results) {
      if (r.status === "rejected") {
        failed = true;
        continue;
      }
      total.written += r.value.written;
      total.ignored += r.value.ignored;
      total.sameTime += r.value.sameTime;
    }
    if (failed) throw writeFailed(entries, shares, results);
    return total;
  }

  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    return this.track(this.deleteRouted(keys, signal));
  }

  private async deleteRouted(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    const counts = await Promise.all(this.group(keys).map((g) => g.node.deleteMany(g.keys, signal)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Scans node after node; cursor = `<membership>:<member index>|<that node's
   * cursor>`. A cursor of an earlier membership (a migration began since:
   * members added, removed, reordered or re-weighted, each wrapped to read
   * through to the keys' old owners) throws ScanRestartError, and the caller
   * scans again from "0". Going on, it skipped keys: a member index named
   * another node, and the members scanned before the switch (or the one being
   * scanned) never made their pass over the old owners, so the keys they take
   * from a shard being retired were listed by no one (46 of 300 claims over
   * [a, b, c] → [a, c]), and a vector index's catch-up removed them from
   * matching until each was written again. The end of a migration keeps the
   * membership (setMembers' scansGoOn).
   */
  async scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    let index = 0;
    let inner = "0";
    if (cursor !== "0") {
      const colon = cursor.indexOf(":");
      const bar = cursor.indexOf("|");
      if (colon > 0 && colon < bar && Number(cursor.slice(0, colon)) !== this.membership) {
        throw new ScanRestartError(this.id, undefined, String(this.membership), `scan cursor "${cursor.slice(0, 40)}" predates the ring's membership change (a migration began)`);
      }
      index = Number(cursor.slice(colon + 1, bar));
      inner = cursor.slice(bar + 1);
      if (colon <= 0 || bar < colon || !Number.isInteger(index) || index >= this.nodes.length) throw new Error(`scan cursor "${cursor.slice(0, 40)}" is not valid`);
    }
    const node = this.nodes[index]!;
    // A scan may span the end of a migration (its members unwrapped meanwhile).
    const page = await node.scan(memberScanCursor(node, inner), count, prefix);
    if (page.cursor !== "0") return { cursor: `${this.membership}:${index}|${page.cursor}`, keys: page.keys };
    return { cursor: index + 1 < this.nodes.length ? `${this.membership}:${index + 1}|0` : "0", keys: page.keys };
  }

  async health(): Promise<NodeHealth> {
    const parts = await Promise.all(
      this.nodes.map((n) => n.health().catch((e: unknown): NodeHealth => ({ id: n.id, ok: false, detail: { error: String(e) } }))),
    );
    return { id: this.id, ok: parts.every((p) => p.ok), detail: { nodes: parts } };
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.close()));
  }

  /** Groups keys by owning node, remembering each key's position in the request. */
  private group(keys: readonly string[]): KeyGroup[] {
    if (this.nodes.length === 1) return [{ owner: 0, node: this.nodes[0]!, keys: keys as string[], positions: keys.map((_, i) => i) }];
    const byOwner = new Map<number, KeyGroup>();
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const owner = this.ringRef.ownerIndexOf(k, ringKeyStart(k));
      let g = byOwner.get(owner);
      if (!g) {
        g = { owner, node: this.nodes[owner]!, keys: [], positions: [] };
        byOwner.set(owner, g);
      }
      g.keys.push(k);
      g.positions.push(i);
    }
    return [...byOwner.values()];
  }
}

/**
 * The error of a write some share of which failed: the first failure (its
 * code, message and Retry-After, as the edges answered before) and the entries
 * that may be stored: the shares written and those whose failure may have
 * landed (storeMayHold: a node refusing before it sent anything, such as a
 * shard whose write breaker is open, holds none of its share). When every
 * share may have landed, the call's own array.
 */
function writeFailed(entries: readonly KvEntry[], shares: ReadonlyArray<readonly [number, KvEntry[]]>, results: readonly PromiseSettledResult<PutOutcome>[]): StoreWriteError {
  let failure: unknown;
  let held: KvEntry[] | undefined;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    const share = shares[i]![1];
    const landed = r.status === "fulfilled" ? share : storeMayHold(r.reason, share);
    if (r.status === "rejected" && failure === undefined) failure = r.reason;
    if (landed === share && held === undefined) continue;
    // A share that (partly) did not land: from here on, collect what did.
    if (held === undefined) {
      held = [];
      for (let j = 0; j < i; j++) appendAll(held, shares[j]![1]);
    }
    appendAll(held, landed);
  }
  return new StoreWriteError(failure, held ?? entries);
}

/** `to.push(...from)` without spreading: a spread passes every element as an argument, and a share of ~1M entries overflowed the stack (a 500 for what should answer 503). */
function appendAll<T>(to: T[], from: readonly T[]): void {
  for (let i = 0; i < from.length; i++) to.push(from[i]!);
}

/**
 * Raw reads across members: the keys are grouped by owner (the ring hashes
 * each key's bytes from where its entity part starts), then each member reads
 * its share in one call, reporting rows to the caller's sink under their
 * batch indices. One call per member, not per key, lets a member overlap the
 * memory reads of its keys (ArenaKvNode.readRaw). No allocation per read once
 * the scratch arrays have grown to the largest batch seen.
 */
class RoutedRawReader implements RawReader {
  /** Owner of each picked key, then (counting sort) where each member's share starts in `grouped`. */
  private owner = new Int32Array(64);
  private grouped = new Int32Array(64);
  private readonly starts: Int32Array;

  /** Members answer every key now, or the ring answers -1 and the caller reads through `getMany` (one member's own reader is used as it is, RawReader.readThrough included). */
  readonly readThrough = undefined;

  constructor(
    private readonly ring: HashRing,
    private readonly readers: readonly RawReader[],
  ) {
    this.starts = new Int32Array(readers.length + 1);
  }

  readRaw(keys: KeyBatch, picks: Int32Array, from: number, to: number, sink: RawRowSink): number {
    const n = to - from;
    if (n === 1) {
      const i = picks[from]!;
      const o = this.ring.ownerIndexOfBytes(keys.bytes, keys.ringStart[i]!, keys.end[i]!);
      return o < 0 ? 0 : this.readers[o]!.readRaw(keys, picks, from, to, sink);
    }
    if (this.owner.length < n) {
      this.owner = new Int32Array(Math.max(n, this.owner.length * 2));
      this.grouped = new Int32Array(this.owner.length);
    }
    const owner = this.owner;
    const starts = this.starts;
    starts.fill(0);
    for (let j = 0; j < n; j++) {
      const i = picks[from + j]!;
      const o = this.ring.ownerIndexOfBytes(keys.bytes, keys.ringStart[i]!, keys.end[i]!);
      owner[j] = o;
      // An empty ring owns nothing: the key is not found.
      if (o >= 0) starts[o + 1]!++;
    }
    const members = this.readers.length;
    for (let m = 0; m < members; m++) starts[m + 1]! += starts[m]!;
    // Counting sort: each member's keys in batch order, members one after another.
    const grouped = this.grouped;
    for (let j = 0; j < n; j++) if (owner[j]! >= 0) grouped[starts[owner[j]!]!++] = picks[from + j]!;
    let found = 0;
    let begin = 0;
    for (let m = 0; m < members; m++) {
      // After the sort, starts[m] is where member m's share ends.
      const end = starts[m]!;
      if (end > begin) {
        const got = this.readers[m]!.readRaw(keys, grouped, begin, end, sink);
        // A member that cannot answer now: neither can the ring (RawReader).
        if (got < 0) return got;
        found += got;
      }
      begin = end;
    }
    return found;
  }
}
