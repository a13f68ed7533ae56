import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "bun:test";
import { runKvContract } from "../../test/kv-contract.ts";
import { DurableKvNode } from "./durable-node.ts";
import { MemoryKvNode } from "./memory-node.ts";

runKvContract("MemoryKvNode", async () => {
  const node = new MemoryKvNode("mem-0");
  return { node, dispose: () => node.close() };
});

runKvContract("DurableKvNode (SQLite WAL)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-durable-"));
  const node = await DurableKvNode.open("disk-0", join(dir, "node.sqlite"));
  return {
    node,
    dispose: async () => {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

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
