import { describe, expect, test } from "bun:test";
import { ForwardingKvNode } from "../kv/forwarding-node.ts";
import type { KvEntry, KvNode, ReadContext, ReadSlot } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { ringKeyStart } from "../kv/keys.ts";
import { MemoryKvNode } from "../kv/memory-node.ts";
import { scanPasses } from "../kv/scan-passes.ts";
import { ScanRestartError, sentNothing, storeMayHold } from "../kv/storage-errors.ts";
import { HashRing } from "../ring/ring.ts";
import { ShardedStore } from "../store/sharded-store.ts";
import { ReadThroughNode } from "./read-through-node.ts";

/**
 * A ring member during a migration (rebalance.ts): reads miss over to the
 * key's previous owner, writes stay here, deletes reach both. The real-Redis
 * migration tests (test/rebalance*.test.ts) drive the common path; these pin
 * the branches a migration rarely hits on cue: a previous owner that cannot
 * answer, a key copied and deleted between the two reads, deletes.
 */

const key = (n: number): string => `feat@1/id=i${n}`;
const row = (ts: number, v: string) => ({ ts, values: [v] });

/** A node whose reads can be made to fail, or to run a step between being asked and answering. */
class ScriptedNode extends ForwardingKvNode {
  failReads = false;
  beforeAnswer: (() => Promise<void>) | undefined;
  readonly reads: string[][] = [];
  override async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    this.reads.push([...keys]);
    if (this.failReads) throw new Error("connection refused");
    const got = await this.inner.getMany(keys, ctx);
    const step = this.beforeAnswer;
    this.beforeAnswer = undefined;
    if (step !== undefined) await step();
    return got;
  }
}

/** Two old members (a, b) and a new one (c) that took some keys from each; `through` is c during the migration. */
function migration() {
  const a = new ScriptedNode(new MemoryKvNode("a"));
  const b = new ScriptedNode(new MemoryKvNode("b"));
  const c = new ScriptedNode(new MemoryKvNode("c"));
  const previous = { ring: new HashRing([{ id: "a", weight: 1 }, { id: "b", weight: 1 }]), nodes: [a, b] as KvNode[] };
  const next = new HashRing([{ id: "a", weight: 1 }, { id: "b", weight: 1 }, { id: "c", weight: 1 }]);
  // Keys that moved to c, by the old owner they came from.
  const movedFrom = (owner: number): number[] => {
    const out: number[] = [];
    for (let n = 0; out.length < 4 && n < 10_000; n++) {
      const k = key(n);
      if (next.ownerIndexOf(k, ringKeyStart(k)) === 2 && previous.ring.ownerIndexOf(k, ringKeyStart(k)) === owner) out.push(n);
    }
    return out;
  };
  const owns = (k: string) => next.ownerIndexOf(k, ringKeyStart(k)) === 2;
  return { a, b, c, through: new ReadThroughNode("c", c, previous, owns), fromA: movedFrom(0), fromB: movedFrom(1), owns };
}

const put = (node: KvNode, entries: KvEntry[]) => node.putMany(entries);

describe("ReadThroughNode", () => {
  test("a scan covers the keys this member owns that are still at their previous owners, not theirs that stay", async () => {
    const { a, b, c, through, fromA, fromB, owns } = migration();
    await put(c, [{ key: key(fromA[0]!), row: row(2, "copied") }]);
    await put(a, [{ key: key(fromA[1]!), row: row(1, "not yet a") }]);
    await put(b, [{ key: key(fromB[0]!), row: row(1, "not yet b") }]);
    // Keys a keeps on the new ring are a's to list, not c's.
    let kept = 0;
    for (let n = 0; kept < 3; n++) {
      if (!owns(key(n)) && new HashRing([{ id: "a", weight: 1 }, { id: "b", weight: 1 }]).ownerIndexOf(key(n), ringKeyStart(key(n))) === 0) {
        await put(a, [{ key: key(n), row: row(1, "stays") }]);
        kept++;
      }
    }
    const keys: string[] = [];
    let cursor = "0";
    do {
      const page = await through.scan(cursor, 2);
      keys.push(...page.keys);
      cursor = page.cursor;
    } while (cursor !== "0");
    // The own node alone listed only the copied key: a vector index catching up took the others for deleted.
    expect(keys.sort()).toEqual([key(fromA[0]!), key(fromA[1]!), key(fromB[0]!)].sort());
  });

  test("a key not yet copied is read at its previous owner; a copied one here; neither asks the other side needlessly", async () => {
    const { a, b, c, through, fromA, fromB } = migration();
    await put(a, [{ key: key(fromA[0]!), row: row(1, "old a") }]);
    await put(b, [{ key: key(fromB[0]!), row: row(1, "old b") }]);
    await put(c, [{ key: key(fromA[1]!), row: row(2, "copied") }]);
    const got = await through.getMany([key(fromA[0]!), key(fromB[0]!), key(fromA[1]!)]);
    expect(got).toEqual([row(1, "old a"), row(1, "old b"), row(2, "copied")]);
    // Each old owner was asked only for its own missing key; the copied key went nowhere else.
    expect(a.reads).toEqual([[key(fromA[0]!)]]);
    expect(b.reads).toEqual([[key(fromB[0]!)]]);
  });

  test("a previous owner that cannot answer gives UNAVAILABLE for its keys only, never a false miss", async () => {
    const { a, b, through, fromA, fromB } = migration();
    await put(b, [{ key: key(fromB[0]!), row: row(1, "old b") }]);
    a.failReads = true;
    const got = await through.getMany([key(fromA[0]!), key(fromB[0]!), key(fromA[1]!)]);
    expect(got).toEqual([UNAVAILABLE, row(1, "old b"), UNAVAILABLE]);
  });

  test("a key the migration copied and deleted between the two reads is read here again, not reported missing", async () => {
    const { a, c, through, fromA } = migration();
    const k = key(fromA[0]!);
    await put(a, [{ key: k, row: row(1, "moving") }]);
    // Our read of c misses; before the old owner answers, the migration copies the key to c and deletes it at a.
    c.beforeAnswer = async () => {
      await put(c, [{ key: k, row: row(1, "moving") }]);
      await a.deleteMany([k]);
    };
    const got = await through.getMany([k]);
    expect(got).toEqual([row(1, "moving")]);
    expect(c.reads).toEqual([[k], [k]]);
    // A key missing everywhere stays a miss after that second look.
    expect(await through.getMany([key(fromA[1]!)])).toEqual([undefined]);
  });

  test("writes stay here; deletes reach the previous owner too, so a row not yet copied cannot come back", async () => {
    const { a, b, c, through, fromA, fromB } = migration();
    await put(a, [{ key: key(fromA[0]!), row: row(1, "old") }]);
    await through.putMany([{ key: key(fromB[0]!), row: row(5, "new") }]);
    expect(await c.getMany([key(fromB[0]!)])).toEqual([row(5, "new")]);
    expect(await b.getMany([key(fromB[0]!)])).toEqual([undefined]);

    expect(await through.deleteMany([key(fromA[0]!), key(fromB[0]!)])).toBe(2);
    expect(await through.getMany([key(fromA[0]!), key(fromB[0]!)])).toEqual([undefined, undefined]);
    expect(await a.getMany([key(fromA[0]!)])).toEqual([undefined]);
  });

  test("a read-through member is never answered from memory alone: every read takes the I/O path", () => {
    const { through } = migration();
    expect(through.readsNow).toBe("never");
    expect(through.rawNow).toBeUndefined();
    expect((through as KvNode).getManyNow([key(1)])).toBeUndefined();
  });
});

async function scanAll(node: KvNode, between?: (page: number) => Promise<void>): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  let page = 0;
  do {
    const got = await node.scan(cursor, 100);
    keys.push(...got.keys);
    cursor = got.cursor;
    if (between) await between(page++);
  } while (cursor !== "0");
  return keys;
}

describe("ReadThroughNode.scan during a migration (review cases)", () => {
  test("a key the migration moves (copy, then delete at the source) between the own-node pass and the source pass is listed by neither", async () => {
    const a = new MemoryKvNode("a");
    const c = new MemoryKvNode("c");
    const previous = { ring: new HashRing([{ id: "a", weight: 1 }]), nodes: [a] as KvNode[] };
    const next = new HashRing([{ id: "a", weight: 1 }, { id: "c", weight: 1 }]);
    const owns = (k: string) => next.ownerIndexOf(k, ringKeyStart(k)) === 1;
    let n = 0;
    while (!owns(key(n))) n++;
    const k = key(n); // owned by c on the new ring, still at a
    await a.putMany([{ key: k, row: row(1, "v") }]);
    const through = new ReadThroughNode("c", c, previous, owns);
    const listed = await scanAll(through, async (page) => {
      if (page !== 0) return;
      // The migration's page for k runs now: copy to c (LWW), then delete at a (rebalance.ts movePage).
      await c.putMany([{ key: k, row: row(1, "v") }]);
      await a.deleteMany([k]);
    });
    // k existed (readable through `through`) during the whole scan.
    expect((await through.getMany([k]))[0]).toEqual(row(1, "v"));
    expect(listed).toContain(k);
  });

  test("a store scan begun before the migration switched the members is asked to start again (ScanRestartError), not continued", async () => {
    const a = new MemoryKvNode("a");
    const b = new MemoryKvNode("b");
    const members = [{ id: "a", weight: 1, node: a as KvNode }, { id: "b", weight: 1, node: b as KvNode }];
    const store = new ShardedStore(members);
    await store.putMany(Array.from({ length: 1000 }, (_, i) => ({ key: key(i), row: row(1, "v") })));
    const first = await store.scan("0", 100);
    expect(first.cursor).not.toBe("0");
    // Migration.run: every member wrapped (same nodes, same ring here), as rebalance.ts does.
    const ring = new HashRing(members);
    const previous = { ring, nodes: members.map((m) => m.node) };
    store.setMembers(members.map((m, i) => ({ ...m, node: new ReadThroughNode(m.id, m.node, previous, (k) => ring.ownerIndexOf(k, ringKeyStart(k)) === i) })));
    const err = await store.scan(first.cursor, 100).then(() => undefined, (e: Error) => e);
    // Not a failure (d7134b6 had it throw a plain error, and every scan spanning a migration's start failed): a restart,
    // which scanPasses callers (vector catch-ups, the demo data check) take by scanning again from "0". Gone on
    // through the own node, it skipped this member's pass over the previous owners (the test above).
    expect(err).toBeInstanceOf(ScanRestartError);
    expect(new Set(await scanAll(store)).size).toBe(1000);
  });

  test("a store scan begun before a migration that retires a shard lists every key: the retired shard's keys are not skipped", async () => {
    const a = new MemoryKvNode("a");
    const b = new MemoryKvNode("b");
    const c = new MemoryKvNode("c");
    const from = [{ id: "a", weight: 1, node: a as KvNode }, { id: "b", weight: 1, node: b as KvNode }, { id: "c", weight: 1, node: c as KvNode }];
    const to = [from[0]!, from[2]!];
    const store = new ShardedStore(from);
    const all = Array.from({ length: 1000 }, (_, i) => key(i));
    await store.putMany(all.map((k) => ({ key: k, row: row(1, "v") })));
    // A scan (a vector index's catch-up) is one page into a when the migration to [a, c] starts, as Migration.run does.
    const first = await store.scan("0", 100);
    expect(first.cursor).not.toBe("0");
    const toRing = new HashRing(to);
    const previous = { ring: new HashRing(from), nodes: from.map((m) => m.node) };
    store.setMembers(to.map((m, i) => ({ ...m, node: new ReadThroughNode(m.id, m.node, previous, (k) => toRing.ownerIndexOf(k, ringKeyStart(k)) === i) })));
    // The scan goes on as the vector index's does: from the start again when a page says its cursor cannot go on.
    const listed = new Set<string>();
    let passes = 0;
    await scanPasses(async () => {
      listed.clear();
      let cursor = "0";
      let page: { cursor: string; keys: readonly string[] } = passes++ === 0 ? first : await store.scan("0", 100);
      for (;;) {
        for (const k of page.keys) listed.add(k);
        cursor = page.cursor;
        if (cursor === "0") return;
        page = await store.scan(cursor, 100);
      }
    });
    // No key moved yet: every one is readable through the store, b's at b.
    expect((await store.getMany(all)).every((r) => r !== undefined)).toBe(true);
    // The cursor into a's own node went on past a's pass over b (the keys a takes from b): they were never listed,
    // and a catch-up took every claim not listed for deleted.
    expect(all.filter((k) => !listed.has(k))).toEqual([]);
  });

  test("…and a scan begun during the migration continues after it ends (members plain again)", async () => {
    const a = new MemoryKvNode("a");
    const b = new MemoryKvNode("b");
    const members = [{ id: "a", weight: 1, node: a as KvNode }, { id: "b", weight: 1, node: b as KvNode }];
    const ring = new HashRing(members);
    const previous = { ring, nodes: members.map((m) => m.node) };
    const store = new ShardedStore(members.map((m, i) => ({ ...m, node: new ReadThroughNode(m.id, m.node, previous, (k) => ring.ownerIndexOf(k, ringKeyStart(k)) === i) })));
    await store.putMany(Array.from({ length: 1000 }, (_, i) => ({ key: key(i), row: row(1, "v") })));
    const first = await store.scan("0", 100);
    store.setMembers(members, { scansGoOn: true }); // Migration.run's end
    const err = await store.scan(first.cursor, 100).then(() => undefined, (e: Error) => e.message);
    expect(err).toBeUndefined();
  });
});

describe("ReadThroughNode.putMany: last write wins against the row wherever it is", () => {
  test("a write not newer than the row still at the old owner is ignored, counted as the LWW script counts its own", async () => {
    const { a, b, c, through, fromA, fromB } = migration();
    await put(a, [{ key: key(fromA[0]!), row: row(10, "at a") }, { key: key(fromA[1]!), row: row(10, "at a") }]);
    await put(b, [{ key: key(fromB[0]!), row: row(10, "at b") }]);
    const out = await through.putMany([
      { key: key(fromA[0]!), row: row(9, "older") },
      { key: key(fromA[1]!), row: row(10, "same time") },
      { key: key(fromB[0]!), row: row(11, "newer") },
      { key: key(fromA[2]!), row: row(1, "new key") },
    ]);
    // Only c's LWW script saw an empty slot for each: every write was answered written, the older one read back.
    expect(out).toEqual({ written: 2, ignored: 2, sameTime: 1 });
    expect(await through.getMany([key(fromA[0]!), key(fromA[1]!), key(fromB[0]!), key(fromA[2]!)])).toEqual([row(10, "at a"), row(10, "at a"), row(11, "newer"), row(1, "new key")]);
    expect(await c.getMany([key(fromA[0]!), key(fromA[1]!)])).toEqual([undefined, undefined]);
  });

  test("a key already copied here (and gone from its old owner) is held against the copy by the own node's script", async () => {
    const { a, c, through, fromA } = migration();
    const k = key(fromA[0]!);
    await put(c, [{ key: k, row: row(10, "copied") }]);
    expect(await through.putMany([{ key: k, row: row(9, "older") }])).toEqual({ written: 0, ignored: 1, sameTime: 0 });
    expect(await through.putMany([{ key: k, row: row(11, "newer") }])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    // The migration's copy that arrives afterwards (LWW) cannot undo it.
    await put(c, [{ key: k, row: row(10, "copied") }]);
    expect(await through.getMany([k])).toEqual([row(11, "newer")]);
    expect(a.reads).toEqual([[k], [k]]);
  });

  test("only keys that move read their old owner, in one batch per old owner; an old owner that cannot answer fails the write, retryably", async () => {
    const { a, b, through, fromA, fromB, owns } = migration();
    let stays = 0;
    while (owns(key(stays))) stays++;
    await through.putMany([
      { key: key(fromA[0]!), row: row(1, "x") },
      { key: key(fromA[1]!), row: row(1, "x") },
      { key: key(fromB[0]!), row: row(1, "x") },
    ]);
    expect(a.reads).toEqual([[key(fromA[0]!), key(fromA[1]!)]]);
    expect(b.reads).toEqual([[key(fromB[0]!)]]);

    // A plain member (its keys stayed where they were) is wrapped too: its writes read nothing more.
    const previous = { ring: new HashRing([{ id: "a", weight: 1 }]), nodes: [a] as KvNode[] };
    const same = new ReadThroughNode("a", a, previous);
    a.reads.length = 0;
    expect(await same.putMany([{ key: key(stays), row: row(1, "x") }])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    expect(a.reads).toEqual([]);

    a.failReads = true;
    const err = await through.putMany([{ key: key(fromA[2]!), row: row(5, "blind") }]).then(
      () => undefined,
      (e: { retryable?: boolean; message: string }) => e,
    );
    expect(err?.retryable).toBe(true);
    a.failReads = false;
    expect(await through.getMany([key(fromA[2]!)])).toEqual([undefined]);
  });

  test("a write its old owner could not be read for is refused before anything is written: it says it sent nothing, so no cache floors or publishes its keys", async () => {
    const { a, c, through, fromA } = migration();
    a.failReads = true;
    const entries = [{ key: key(fromA[0]!), row: row(5, "new") }];
    const err = await through.putMany(entries).then(
      () => undefined,
      (e: unknown) => e,
    );
    // The answer is as before (503 unavailable, retryable); what changed nothing now says so.
    expect(err).toMatchObject({ kind: "unavailable", code: "unavailable", retryable: true });
    expect(sentNothing(err)).toBe(true);
    expect(storeMayHold(err, entries)).toEqual([]);
    expect(await c.getMany([key(fromA[0]!)])).toEqual([undefined]);
    // A row the old owner holds that is not a row (UNAVAILABLE) refuses the write the same way.
    a.failReads = false;
    a.getMany = async (keys: readonly string[]) => keys.map(() => UNAVAILABLE);
    const unreadable = await through.putMany(entries).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(sentNothing(unreadable)).toBe(true);
    expect(await c.getMany([key(fromA[0]!)])).toEqual([undefined]);
  });
});
