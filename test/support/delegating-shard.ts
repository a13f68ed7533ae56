import type { KvEntry, KvNode, PrimaryAccess, PutOutcome, ReadContext, ScanPage } from "../../src/kv/kv-node.ts";

/**
 * A shard that passes every call to `inner` (a KvNode with primary access, as
 * rebalancing takes), never answering from memory: tests subclass it and
 * override the one call they hold, fail or count. One place to follow the
 * interfaces: each wrapper repeated every method, and every new PrimaryAccess
 * method had to be added to each.
 */
export class DelegatingShard implements KvNode, PrimaryAccess {
  readonly readsNow = "never";
  readonly rawNow = undefined;
  constructor(protected readonly inner: KvNode & PrimaryAccess) {}
  get id() {
    return this.inner.id;
  }
  getMany(keys: readonly string[], ctx?: ReadContext) {
    return this.inner.getMany(keys, ctx);
  }
  getManyNow() {
    return undefined;
  }
  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    return this.inner.putMany(entries, signal);
  }
  deleteMany(keys: readonly string[], signal?: AbortSignal) {
    return this.inner.deleteMany(keys, signal);
  }
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.inner.scan(cursor, count, prefix);
  }
  health() {
    return this.inner.health();
  }
  close() {
    return this.inner.close();
  }
  getManyPrimary(keys: readonly string[], signal?: AbortSignal) {
    return this.inner.getManyPrimary(keys, signal);
  }
  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal) {
    return this.inner.deleteIfNotNewer(items, signal);
  }
  size() {
    return this.inner.size();
  }
  scanPrimary(cursor: string, count: number) {
    return this.inner.scanPrimary(cursor, count);
  }
  primaryProcess() {
    return this.inner.primaryProcess();
  }
}
