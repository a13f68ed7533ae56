import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decode } from "@msgpack/msgpack";
import { KeyBatch } from "../src/kv/key-batch.ts";
import { type KvEntry, type KvNode, type StoredRow, UNAVAILABLE } from "../src/kv/kv-node.ts";

/** Builds a fresh, empty node for the suite and tears it down afterwards. */
export interface KvNodeHarness {
  node: KvNode;
  dispose(): Promise<void>;
}

const row = (ts: number, ...values: StoredRow["values"]): StoredRow => ({ ts, values });
const entry = (key: string, r: StoredRow): KvEntry => ({ key, row: r });

/**
 * The behaviour every KvNode must show, run against each implementation
 * (in-process, durable embedded, Redis, replica set, sharded ring).
 * Each test uses its own key prefix so one node can serve the whole suite.
 */
export function runKvContract(name: string, makeHarness: () => Promise<KvNodeHarness>): void {
  describe(`KvNode contract: ${name}`, () => {
    let h: KvNodeHarness;
    beforeAll(async () => {
      h = await makeHarness();
    });
    afterAll(async () => {
      await h.dispose();
    });

    test("a miss is undefined, in request order", async () => {
      await h.node.putMany([entry("miss@1/k=i2", row(10, 2))]);
      const got = await h.node.getMany(["miss@1/k=i1", "miss@1/k=i2", "miss@1/k=i3"]);
      expect(got).toEqual([undefined, row(10, 2), undefined]);
    });

    test("getManyNow agrees with getMany, and with readsNow", async () => {
      const keys = ["now@1/k=i1", "now@1/k=i2"];
      await h.node.putMany([entry(keys[0]!, row(7, "seven"))]);
      const awaited = await h.node.getMany(keys);
      const now = h.node.getManyNow(keys);
      if (h.node.readsNow === "never") expect(now).toBeUndefined();
      if (h.node.readsNow === "always") expect(now).toBeDefined();
      if (now !== undefined) expect(now).toEqual(awaited);
    });

    test("rawNow, when present, reports exactly the rows getManyNow answers, as their stored bytes", async () => {
      const raw = h.node.rawNow;
      if (raw === undefined) {
        // A node without the capability says so; nothing else to check.
        expect(h.node.rawNow).toBeUndefined();
        return;
      }
      const keys = ["raw@1/k=i1", "raw@1/k=i2", "raw@1/k=i3", "raw@1/k=s9:x"];
      const values = [42, -7.25, "héllo", true, null, [1, 2], ["a"], []];
      await h.node.putMany([entry(keys[0]!, row(5, ...values)), entry(keys[2]!, row(1_700_000_000_123, "x")), entry(keys[3]!, row(9, 1))]);
      const batch = KeyBatch.of(keys);
      let now = h.node.getManyNow(keys);
      if (now === undefined) {
        // A node holding only some keys in memory (a cache tier's L1) cannot answer them now either way: -1, no rows.
        expect(h.node.readsNow).toBe("sometimes");
        const reported: number[] = [];
        expect(raw.readRaw(batch, batch.all, 0, batch.count, { row: (index) => reported.push(index) })).toBe(-1);
        expect(reported.length).toBeLessThan(keys.length);
        await h.node.getMany(keys); // read once: now they are in memory
        now = h.node.getManyNow(keys)!;
      }
      const seen: { index: number; ts: number; values: unknown }[] = [];
      const found = raw.readRaw(batch, batch.all, 0, batch.count, {
        row(index, bytes, _view, start, end, ts) {
          seen.push({ index, ts, values: decode(bytes.subarray(start, end)) });
        },
      });
      expect(found).toBe(3);
      const expected = now.flatMap((slot, index) => (slot === undefined || slot === UNAVAILABLE ? [] : [{ index, ts: slot.ts, values: slot.values }]));
      // Each row under its batch index, in whatever order the members report them (a router groups keys by member).
      expect(seen.sort((a, b) => a.index - b.index)).toEqual(expected);
    });

    test("readThrough, when present (readers that answer -1 for keys held elsewhere), reads the batch as getMany does and reports its rows as bytes", async () => {
      const through = h.node.rawNow?.readThrough;
      if (through === undefined) {
        // Readers that answer every key now, or composites of several readers, say so.
        expect(h.node.rawNow?.readThrough).toBeUndefined();
        return;
      }
      expect(h.node.readsNow).toBe("sometimes");
      const keys = ["thru@1/k=i1", "thru@1/k=i2", "thru@1/k=i3"];
      await h.node.putMany([entry(keys[0]!, row(5, 1.5, "a")), entry(keys[2]!, row(7, [1, 2]))]);
      const expected = await h.node.getMany(keys);
      // A key never read: the pass lacks it until readRest has read it.
      const held = through(KeyBatch.of([...keys, "thru@1/k=i4"]));
      expect([held.count, held.missing]).toEqual([4, 1]);
      await held.readRest({ degraded: [] });
      const seen: { index: number; ts: number; values: unknown }[] = [];
      expect(held.report({ row: (index, bytes, _view, start, end, ts) => seen.push({ index, ts, values: decode(bytes.subarray(start, end)) }) })).toBe(2);
      expect(seen.sort((a, b) => a.index - b.index)).toEqual([
        { index: 0, ts: 5, values: [1.5, "a"] },
        { index: 2, ts: 7, values: [[1, 2]] },
      ]);
      expect(held.slots()).toEqual([...expected, undefined]);
      // Everything is in memory now: the pass answers at once.
      const now = through(KeyBatch.of(keys));
      expect(now.missing).toBe(0);
      expect(now.report({ row: () => {} })).toBe(2);
    });

    test("round-trips every value type", async () => {
      const values = [42, -7.25, "héllo ; = /", true, false, null, [1, 2, 3], [0.5, -1.5], ["a", "b"], [true, false], []];
      await h.node.putMany([entry("types@1/k=s1:x", row(1_700_000_000_123, ...values))]);
      const [got] = await h.node.getMany(["types@1/k=s1:x"]);
      expect(got).toEqual(row(1_700_000_000_123, ...values));
    });

    test("last write wins by event time: older and equal events are ignored, equal ones counted as same-time replays", async () => {
      const k = "lww@1/k=i1";
      expect(await h.node.putMany([entry(k, row(200, "v200"))])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
      expect(await h.node.putMany([entry(k, row(100, "v100"))])).toEqual({ written: 0, ignored: 1, sameTime: 0 });
      expect(await h.node.putMany([entry(k, row(200, "again"))])).toEqual({ written: 0, ignored: 1, sameTime: 1 });
      expect((await h.node.getMany([k]))[0]).toEqual(row(200, "v200"));
      expect(await h.node.putMany([entry(k, row(300, "v300"))])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
      expect((await h.node.getMany([k]))[0]).toEqual(row(300, "v300"));
    });

    test("same key twice in one batch: the newer event wins whatever the order", async () => {
      const out = await h.node.putMany([
        entry("batch@1/k=i1", row(5, "new")),
        entry("batch@1/k=i1", row(4, "old")),
        entry("batch@1/k=i2", row(4, "old")),
        entry("batch@1/k=i2", row(5, "new")),
        entry("batch@1/k=i2", row(5, "replayed")),
      ]);
      expect(out).toEqual({ written: 3, ignored: 2, sameTime: 1 });
      const got = await h.node.getMany(["batch@1/k=i1", "batch@1/k=i2"]);
      expect(got).toEqual([row(5, "new"), row(5, "new")]);
    });

    test("replaying a batch changes nothing", async () => {
      const batch = Array.from({ length: 50 }, (_, i) => entry(`replay@1/k=i${i}`, row(1000 + i, i, `s${i}`)));
      expect(await h.node.putMany(batch)).toEqual({ written: 50, ignored: 0, sameTime: 0 });
      expect(await h.node.putMany(batch)).toEqual({ written: 0, ignored: 50, sameTime: 50 });
      const got = await h.node.getMany(batch.map((e) => e.key));
      expect(got).toEqual(batch.map((e) => e.row));
    });

    test("concurrent writers converge on the newest event", async () => {
      const k = "race@1/k=i1";
      const writes = Array.from({ length: 40 }, (_, i) => h.node.putMany([entry(k, row((i * 7919) % 40, i))]));
      const outcomes = await Promise.all(writes);
      const written = outcomes.reduce((n, o) => n + o.written, 0);
      expect(written).toBeGreaterThanOrEqual(1);
      const [got] = await h.node.getMany([k]);
      expect((got as StoredRow).ts).toBe(39);
    });

    test("deleteMany removes keys and counts the ones that existed", async () => {
      await h.node.putMany([entry("del@1/k=i1", row(1, 1)), entry("del@1/k=i2", row(1, 2))]);
      expect(await h.node.deleteMany(["del@1/k=i1", "del@1/k=i2", "del@1/k=i3"])).toBe(2);
      expect(await h.node.getMany(["del@1/k=i1", "del@1/k=i2"])).toEqual([undefined, undefined]);
    });

    test("scan finds every key with the prefix and no other", async () => {
      const keys = Array.from({ length: 230 }, (_, i) => `scan@1/k=i${i}`);
      await h.node.putMany(keys.map((k, i) => entry(k, row(1, i))));
      await h.node.putMany([entry("other@1/k=i1", row(1, 0))]);
      const seen = new Set<string>();
      let cursor = "0";
      let pages = 0;
      do {
        const page = await h.node.scan(cursor, 50, "scan@1/");
        for (const k of page.keys) seen.add(k);
        cursor = page.cursor;
        pages++;
      } while (cursor !== "0" && pages < 10_000);
      expect([...seen].sort()).toEqual([...keys].sort());
    });

    test("empty batches are no-ops", async () => {
      expect(await h.node.getMany([])).toEqual([]);
      expect(await h.node.putMany([])).toEqual({ written: 0, ignored: 0, sameTime: 0 });
      expect(await h.node.deleteMany([])).toBe(0);
    });

    test("health reports ok with the node's id", async () => {
      const health = await h.node.health();
      expect(health.ok).toBe(true);
      expect(health.id).toBe(h.node.id);
    });
  });
}
