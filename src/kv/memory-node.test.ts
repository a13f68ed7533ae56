import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "bun:test";
import { runKvContract } from "../../test/kv-contract.ts";
import { rejectionOf } from "../../test/support/rejection.ts";
import { DurableKvNode } from "./durable-node.ts";
import { StorageError } from "./storage-errors.ts";
import { MemoryKvNode } from "./memory-node.ts";

runKvContract("MemoryKvNode", async () => {
  const node = new MemoryKvNode("mem-0");
  return { node, dispose: () => node.close() };
});

for (const [name, thread] of [
  ["DurableKvNode (SQLite WAL, on the SQLite thread)", undefined],
  ["DurableKvNode (SQLite WAL, in this thread)", false],
] as const) {
  runKvContract(name, async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
    const node = await DurableKvNode.open("disk-0", join(dir, "node.sqlite"), { thread });
    return {
      node,
      dispose: async () => {
        await node.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}

describe("MemoryKvNode scan", () => {
  test("keys deleted during a scan do not make it skip others", async () => {
    const node = new MemoryKvNode("m");
    const keys = Array.from({ length: 100 }, (_, i) => `v@1/k=i${i}`);
    await node.putMany(keys.map((key) => ({ key, row: { ts: 1, values: [] } })));
    const seen: string[] = [];
    let cursor = "0";
    do {
      const page = await node.scan(cursor, 10, "v@1/");
      seen.push(...page.keys);
      await node.deleteMany(page.keys);
      cursor = page.cursor;
    } while (cursor !== "0");
    expect(seen.sort()).toEqual([...keys].sort());
    expect(node.size).toBe(0);
  });

  test("an unknown cursor is an error, not an empty page", async () => {
    const node = new MemoryKvNode("m");
    await expect(node.scan("99:5", 10)).rejects.toThrow(/unknown or expired/);
  });
});

describe("DurableKvNode", () => {
  test("a node file that is not a database is refused at open, naming the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
    try {
      const file = join(dir, "embedded-1.sqlite");
      writeFileSync(file, "x".repeat(8192));
      // SQLite said only "file is not a database": which of the node files?
      expect(String(await rejectionOf(DurableKvNode.open("embedded-1", file)))).toContain(`${file}: file is not a database`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [where, thread] of [
    ["", undefined],
    [" (SQLite in this thread)", false],
  ] as const) {
    test(`a disk that fills up refuses the write whole, as a retryable storage error (503), and loses nothing acknowledged${where}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
      const file = join(dir, "n.sqlite");
      // A file capped at 40 pages of 4 KiB: SQLite answers SQLITE_FULL past it, as on a full disk.
      const node = await DurableKvNode.open("d", file, { thread, pragmas: ["PRAGMA max_page_count = 40"] });
      const acknowledged: string[] = [];
      let refusal: unknown;
      for (let i = 0; i < 10_000 && refusal === undefined; i++) {
        const batch = [0, 1, 2].map((j) => ({ key: `v@1/k=i${i}-${j}`, row: { ts: 1, values: ["x".repeat(400)] } }));
        try {
          await node.putMany(batch);
          acknowledged.push(...batch.map((e) => e.key));
        } catch (e) {
          refusal = e;
          // Nothing of the refused batch is served from memory either.
          expect(await node.getMany(batch.map((e) => e.key))).toEqual([undefined, undefined, undefined]);
        }
      }
      expect(refusal).toBeInstanceOf(StorageError);
      expect((refusal as StorageError).code).toBe("storage_full");
      expect((refusal as StorageError).retryable).toBe(true);
      expect((refusal as StorageError).kind).toBe("unavailable");
      expect((refusal as Error).message).toContain("nothing of this write was stored");
      expect(acknowledged.length).toBeGreaterThan(0);
      await node.close();
      // Every acknowledged row is in the file.
      const reopened = await DurableKvNode.open("d", file);
      expect((await reopened.getMany(acknowledged)).every((s) => s !== undefined)).toBe(true);
      await reopened.close();
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test("a file is held by one node at a time: a second opener is refused, naming the file, until the first closes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
    const file = join(dir, "n.sqlite");
    const a = await DurableKvNode.open("d", file);
    await a.putMany([{ key: "v@1/k=i1", row: { ts: 1, values: [1] } }]);
    // Two writers would each serve rows from their own memory and never see the other's.
    expect(String(await rejectionOf(DurableKvNode.open("d", file)))).toContain(`${file} is in use by another process`);
    await a.close();
    const b = await DurableKvNode.open("d", file);
    expect(await b.getMany(["v@1/k=i1"])).toEqual([{ ts: 1, values: [1] }]);
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("reopening the file restores the newest rows", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
    const file = join(dir, "n.sqlite");
    const a = await DurableKvNode.open("d", file);
    await a.putMany([
      { key: "v@1/k=i1", row: { ts: 10, values: [1, "a", [1, 2]] } },
      { key: "v@1/k=i1", row: { ts: 5, values: [0, "old", []] } },
      { key: "v@1/k=i2", row: { ts: 7, values: [2, null, []] } },
    ]);
    await a.deleteMany(["v@1/k=i2"]);
    await a.close();
    const b = await DurableKvNode.open("d", file);
    expect(await b.getMany(["v@1/k=i1", "v@1/k=i2"])).toEqual([{ ts: 10, values: [1, "a", [1, 2]] }, undefined]);
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
