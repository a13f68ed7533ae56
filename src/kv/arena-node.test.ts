import { describe, expect, test } from "bun:test";
import { runKvContract } from "../../test/kv-contract.ts";
import { ArenaKvNode } from "./arena-node.ts";
import { MAX_SLAB_BYTES } from "./arena-slabs.ts";
import { hashAsciiInto, hashBytes } from "./arena-table.ts";
import type { FeatureValue, StoredRow } from "./kv-node.ts";
import { encodeRow } from "./row-codec.ts";

runKvContract("ArenaKvNode", async () => {
  const node = new ArenaKvNode("arena-0");
  return { node, dispose: () => node.close() };
});

/** Deterministic PRNG (mulberry32) so every run exercises the same operations. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const row = (ts: number, ...values: FeatureValue[]): StoredRow => ({ ts, values });

async function scanAll(node: ArenaKvNode, prefix: string, pageSize: number, during?: (keys: readonly string[]) => void): Promise<string[]> {
  const seen: string[] = [];
  let cursor = "0";
  for (let pages = 0; pages < 1_000_000; pages++) {
    const page = await node.scan(cursor, pageSize, prefix);
    seen.push(...page.keys);
    during?.(page.keys);
    cursor = page.cursor;
    if (cursor === "0") break;
  }
  return seen;
}

describe("ArenaKvNode storage", () => {
  test("grows through many rehashes and keeps every key readable", () => {
    const node = new ArenaKvNode("a");
    const n = 200_000;
    for (let start = 0; start < n; start += 5000) {
      const batch = Array.from({ length: 5000 }, (_, j) => ({ key: `v@1/k=i${start + j}`, row: row(start + j, start + j, `s${(start + j) % 97}`) }));
      expect(node.putManySync(batch).written).toBe(5000);
    }
    expect(node.size).toBe(n);
    const stats = node.memoryStats();
    expect(stats.tableCapacity).toBeGreaterThanOrEqual(n / 0.7);
    expect(stats.deadBytes).toBeLessThan(stats.slabBytes / 4);
    for (let i = 0; i < n; i++) {
      const got = node.get(`v@1/k=i${i}`);
      if (got?.ts !== i || got.values[0] !== i || got.values[1] !== `s${i % 97}`) throw new Error(`key ${i} read back as ${JSON.stringify(got)}`);
    }
    expect(node.get(`v@1/k=i${n}`)).toBeUndefined();
  });

  test("overwrite churn keeps slab memory bounded (leak test)", () => {
    const node = new ArenaKvNode("a");
    const keys = Array.from({ length: 10_000 }, (_, i) => `churn@1/k=i${i}`);
    const slabBytes: number[] = [];
    for (let round = 1; round <= 50; round++) {
      // The row length changes every round, so no overwrite fits in place.
      const pad = "x".repeat(round % 9);
      node.putManySync(keys.map((key, i) => ({ key, row: row(round, i, pad, [round, i]) })));
      slabBytes.push(node.memoryStats().slabBytes);
    }
    const stats = node.memoryStats();
    // Without compaction this would be ~50x the live bytes.
    expect(stats.slabBytes).toBeLessThan(4 * stats.liveBytes + MAX_SLAB_BYTES);
    expect(Math.max(...slabBytes.slice(25))).toBeLessThanOrEqual(Math.max(...slabBytes.slice(5, 25)));
    expect(node.size).toBe(keys.length);
    const pad = "x".repeat(50 % 9);
    for (let i = 0; i < keys.length; i += 7) expect(node.get(keys[i]!)).toEqual(row(50, i, pad, [50, i]));
  });

  test("same-length overwrites are rewritten in place and make no garbage", () => {
    const node = new ArenaKvNode("a");
    node.putManySync([{ key: "k", row: row(1, 1.5, "abc") }]);
    const before = node.memoryStats();
    for (let ts = 2; ts < 1000; ts++) node.putManySync([{ key: "k", row: row(ts, ts + 0.5, "xyz") }]);
    expect(node.memoryStats()).toEqual(before);
    expect(node.get("k")).toEqual(row(999, 999.5, "xyz"));
  });

  test("compaction relocates live rows without changing them and frees dead slabs", () => {
    const node = new ArenaKvNode("a");
    const n = 30_000;
    const value = (i: number, gen: number): FeatureValue[] => [i, `gen${gen}-${"y".repeat(i % 13)}`, [i % 3 === 0, gen > 0]];
    node.putManySync(Array.from({ length: n }, (_, i) => ({ key: `c@1/k=i${i}`, row: row(10, ...value(i, 0)) })));
    // Overwrite two thirds with longer rows and delete a tenth: most early slabs are now mostly dead.
    node.putManySync(Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 !== 0).map((i) => ({ key: `c@1/k=i${i}`, row: row(20, ...value(i, 11)) })));
    node.deleteManySync(Array.from({ length: n / 10 }, (_, j) => `c@1/k=i${j * 10}`));
    node.compact();
    const after = node.memoryStats();
    expect(after.deadBytes).toBeLessThan(after.slabBytes / 4);
    for (let i = 0; i < n; i++) {
      const expected = i % 10 === 0 ? undefined : i % 3 === 0 ? row(10, ...value(i, 0)) : row(20, ...value(i, 11));
      expect(node.get(`c@1/k=i${i}`)).toEqual(expected);
    }
    expect(node.size).toBe(n - n / 10);
  });

  test("deletes and reinserts reuse the table instead of growing it", async () => {
    const node = new ArenaKvNode("a");
    const keys = Array.from({ length: 5000 }, (_, i) => `d@1/k=i${i}`);
    let capacity = 0;
    for (let cycle = 0; cycle < 20; cycle++) {
      await node.putMany(keys.map((key, i) => ({ key, row: row(cycle + 1, cycle, i) })));
      expect(node.size).toBe(keys.length);
      expect(node.get(keys[cycle * 7]!)).toEqual(row(cycle + 1, cycle, cycle * 7));
      expect(await node.deleteMany(keys.filter((_, i) => i % 2 === cycle % 2))).toBe(keys.length / 2);
      expect(node.get(keys[cycle % 2]!)).toBeUndefined();
      expect(await node.deleteMany(keys)).toBe(keys.length / 2);
      expect(node.size).toBe(0);
      if (cycle === 1) capacity = node.memoryStats().tableCapacity;
    }
    expect(node.memoryStats().tableCapacity).toBe(capacity);
    expect(node.memoryStats().liveBytes).toBe(0);
    // A deleted key is a fresh key again: an older ts is accepted.
    await node.putMany([{ key: keys[0]!, row: row(0, "back") }]);
    expect(node.get(keys[0]!)).toEqual(row(0, "back"));
  });

  test("unicode, long keys and oversized rows round-trip", async () => {
    const node = new ArenaKvNode("a");
    const long = `long@1/k=s${"é".repeat(50_000)}:${"z".repeat(100_000)}`;
    const big = "b".repeat(3 * MAX_SLAB_BYTES);
    const entries = [
      { key: "u@1/k=s5:héllo", row: row(1, "é") },
      { key: "u@1/k=s2:🚀", row: row(2, "🚀") },
      { key: "u@1/k=s3:東京都", row: row(3, ["東", "京"]) },
      { key: "u@1/k=s5:hello", row: row(4, "ascii twin") },
      { key: long, row: row(5, 1) },
      { key: "big@1/k=i1", row: row(6, big) },
    ];
    expect((await node.putMany(entries)).written).toBe(entries.length);
    expect(await node.getMany(entries.map((e) => e.key))).toEqual(entries.map((e) => e.row));
    expect((await scanAll(node, "u@1/k=s", 2)).sort()).toEqual(entries.slice(0, 4).map((e) => e.key).sort());
    expect(await scanAll(node, "u@1/k=s3:東", 10)).toEqual(["u@1/k=s3:東京都"]);
    // Replacing the oversized row frees its dedicated slab.
    const before = node.memoryStats().slabBytes;
    await node.putMany([{ key: "big@1/k=i1", row: row(7, "small") }]);
    expect(node.memoryStats().slabBytes).toBeLessThan(before - 2 * MAX_SLAB_BYTES);
    expect(await node.deleteMany([long])).toBe(1);
    expect(await node.getMany([long, "big@1/k=i1"])).toEqual([undefined, row(7, "small")]);
  });

  test("stores encoded rows as given and compares their ts without decoding", () => {
    const node = new ArenaKvNode("a");
    expect(node.putEncoded("e", encodeRow(row(5, "five", [1, 2])))).toBe(true);
    expect(node.putEncoded("e", encodeRow(row(5, "again")))).toBe(false);
    expect(node.timestampOf("e")).toBe(5);
    expect(node.timestampOf("missing")).toBeUndefined();
    expect(node.getManyNow(["e"])).toEqual([row(5, "five", [1, 2])]);
  });

  test("matches a Map model over random puts, deletes and compactions", () => {
    const node = new ArenaKvNode("a");
    const model = new Map<string, StoredRow>();
    const rand = rng(42);
    for (let op = 0; op < 40_000; op++) {
      const key = `m@1/k=i${Math.floor(rand() * 600)}`;
      if (rand() < 0.15) {
        expect(node.deleteManySync([key])).toBe(model.delete(key) ? 1 : 0);
        continue;
      }
      const r = row(Math.floor(rand() * 1000), "v".repeat(Math.floor(rand() * 40)), op);
      const old = model.get(key);
      const wins = old === undefined || r.ts > old.ts;
      if (wins) model.set(key, r);
      expect(node.putManySync([{ key, row: r }]).written).toBe(wins ? 1 : 0);
    }
    expect(node.size).toBe(model.size);
    for (const [k, r] of model) expect(node.get(k)).toEqual(r);
    expect((node.memoryStats().slabBytes)).toBeLessThan(4 * MAX_SLAB_BYTES);
  });
});

describe("arena key hashing", () => {
  test("the one-pass ASCII hash equals the byte hash for every length", () => {
    const out = new Uint8Array(64);
    for (let len = 0; len < 40; len++) {
      const key = "driver_hourly_stats@1/driver_id=i1001234".slice(0, len);
      expect(hashAsciiInto(key, out)).toBe(hashBytes(new TextEncoder().encode(key), 0, len));
      // The same bytes at an offset (a KeyBatch's keys sit inside one buffer) hash the same.
      expect(hashBytes(new TextEncoder().encode(`xyz${key}`), 3, len)).toBe(hashBytes(new TextEncoder().encode(key), 0, len));
      expect(Buffer.from(out.subarray(0, len)).toString("latin1")).toBe(key);
    }
    expect(hashAsciiInto("abcé", out)).toBe(-1);
    expect(hashAsciiInto("abcdé", out)).toBe(-1);
  });
});

describe("ArenaKvNode scan", () => {
  test("keys deleted, moved or rehashed during a scan do not make it skip others", async () => {
    const node = new ArenaKvNode("a");
    const keys = Array.from({ length: 3000 }, (_, i) => `s@1/k=i${i}`);
    node.putManySync(keys.map((key) => ({ key, row: row(1, "first") })));
    let ts = 2;
    const seen = await scanAll(node, "s@1/", 100, (page) => {
      // A migration deletes what it copied; meanwhile writes relocate rows,
      // new keys force rehashes and compaction moves records between slabs.
      node.deleteManySync(page);
      node.putManySync(keys.slice(-500).map((key) => ({ key, row: row(ts, "longer value ".repeat(ts % 4)) })));
      node.putManySync(Array.from({ length: 400 }, (_, i) => ({ key: `new@1/k=i${ts * 1000 + i}`, row: row(1, i) })));
      node.compact();
      ts++;
    });
    expect(seen.sort()).toEqual([...keys].sort());
  });

  test("an unknown cursor is an error, not an empty page", async () => {
    const node = new ArenaKvNode("a");
    await expect(node.scan("99:5", 10)).rejects.toThrow(/unknown or expired/);
  });
});
