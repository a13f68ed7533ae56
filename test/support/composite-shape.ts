import type { KvNode } from "../../src/kv/kv-node.ts";

/**
 * `inner` in the shape of a composite over I/O (a ring of shards): never answers from memory, so every
 * read goes through `getMany`; the calls given in `over` replace inner's (a scan that fails, reads that
 * come back UNAVAILABLE, calls counted). For tests of what the composite's callers do when a shard is out.
 */
export function compositeShape(inner: KvNode, over: Partial<Pick<KvNode, "getMany" | "scan" | "putMany">> = {}): KvNode {
  return {
    id: `${inner.id}-composite`,
    readsNow: "never",
    rawNow: undefined,
    getManyNow: () => undefined,
    getMany: over.getMany ?? ((keys, ctx) => inner.getMany(keys, ctx)),
    putMany: over.putMany ?? ((entries, signal) => inner.putMany(entries, signal)),
    deleteMany: (keys, signal) => inner.deleteMany(keys, signal),
    scan: over.scan ?? ((cursor, count, prefix) => inner.scan(cursor, count, prefix)),
    health: () => inner.health(),
    close: () => inner.close(),
  };
}
