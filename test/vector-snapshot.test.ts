import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";
import { SnapshotStore } from "../src/vector/snapshot.ts";
import { ViewIndex } from "../src/vector/view-index.ts";
import { startQuiver } from "./support/quiver-process.ts";
import { prng, unitVector } from "./support/vectors.ts";

const dirs: string[] = [];
const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `quiver-${name}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function itemsView(M: number) {
  return compileRegistry({
    entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
    featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M, efConstruction: 64 } }],
  }).views.get("items")!;
}

describe("SnapshotStore", () => {
  test("round trip: same labels, same answers, last applied change kept", async () => {
    const dir = tempDir("snap");
    const store = new SnapshotStore(dir);
    const view = itemsView(8);
    const vi = ViewIndex.empty(view, view.index!, undefined);
    for (let i = 0; i < 200; i++) vi.apply(`items@1/item_id=i${i}`, { ts: 1000 + i, values: [unitVector(8, prng(i + 1))] }, 5);
    for (let i = 0; i < 200; i += 7) vi.apply(`items@1/item_id=i${i}`, undefined, 6);
    await store.write(vi, 1);
    const back = (await store.read(view, view.index!, undefined))!;
    expect(back.size).toBe(vi.size);
    expect(back.lastApplied).toEqual(vi.lastApplied);
    const q = unitVector(8, prng(4242));
    expect(back.search(q, 10, 64, undefined)).toEqual(vi.search(q, 10, 64, undefined));
    // A second snapshot replaces the first generation's index file.
    await store.write(vi, 2);
    expect(readdirSync(dir).filter((f) => f.endsWith(".index"))).toEqual(["items@1.2.index"]);
  });

  test("a snapshot of a view's new version removes the old version's files", async () => {
    const dir = tempDir("snap-version");
    const store = new SnapshotStore(dir);
    const versioned = (version: number, name = "items") =>
      compileRegistry({
        entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
        featureViews: [{ name, version, entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 64 } }],
      }).views.get(name)!;
    const write = async (view: ReturnType<typeof versioned>, generation: number) => {
      const vi = ViewIndex.empty(view, view.index!, undefined);
      vi.apply(`${view.keyPrefix}item_id=i1`, { ts: 1, values: [unitVector(8, prng(1))] }, 0);
      await store.write(vi, generation);
    };
    await write(versioned(1), 1);
    await write(versioned(1, "items2"), 2);
    await write(versioned(2), 3);
    // The version-1 index stayed beside version 2's for good, one more with every bump.
    expect(readdirSync(dir).sort()).toEqual(["items2@1.2.index", "items2@1.snapshot.json", "items@2.3.index", "items@2.snapshot.json"]);
    expect(await store.read(versioned(2), versioned(2).index!, undefined)).toBeDefined();
  });

  test("a snapshot of another shape, or a damaged one, is ignored (the caller rebuilds)", async () => {
    const dir = tempDir("snap-shape");
    const store = new SnapshotStore(dir);
    const view = itemsView(8);
    const vi = ViewIndex.empty(view, view.index!, undefined);
    vi.apply("items@1/item_id=i1", { ts: 1, values: [unitVector(8, prng(1))] }, 0);
    await store.write(vi, 1);
    const reshaped = itemsView(12);
    expect(await store.read(reshaped, reshaped.index!, undefined)).toBeUndefined();
    writeFileSync(join(dir, "items@1.snapshot.json"), "{ not json");
    expect(await store.read(view, view.index!, undefined)).toBeUndefined();
  });

  test("an index file damaged after its manifest was written (garbage mid-file, cut short) is ignored, for HNSW and brute force", async () => {
    for (const algorithm of ["hnsw", "brute-force"] as const) {
      const view = compileRegistry({
        entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
        featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", algorithm } }],
      }).views.get("items")!;
      for (const damage of ["garbage", "truncated"] as const) {
        const dir = tempDir(`snap-${algorithm}-${damage}`);
        const store = new SnapshotStore(dir);
        const vi = ViewIndex.empty(view, view.index!, undefined);
        for (let i = 0; i < 200; i++) vi.apply(`items@1/item_id=i${i}`, { ts: 1000 + i, values: [unitVector(8, prng(i + 1))] }, 5);
        await store.write(vi, 1);
        expect(await store.read(view, view.index!, undefined)).toBeDefined();
        const file = join(dir, "items@1.1.index");
        const bytes = new Uint8Array(readFileSync(file));
        // 64 bytes of garbage in the middle (an HNSW index then crashed the process at the first match), or the
        // file cut to a multiple of 4 bytes (a brute-force index read its missing vectors as zeros, for good).
        if (damage === "garbage") bytes.set(new Uint8Array(64).fill(0xa5), bytes.length >> 1);
        writeFileSync(file, damage === "garbage" ? bytes : bytes.subarray(0, (bytes.length >> 3) << 2));
        expect({ algorithm, damage, read: await store.read(view, view.index!, undefined) }).toEqual({ algorithm, damage, read: undefined });
      }
    }
  });
});

describe("snapshot across kill -9 (real server, --data-dir)", () => {
  test("restart loads the snapshot, catches up writes made after it, and answers the same", async () => {
    const dataDir = tempDir("snap-proc");
    const args = ["--data-dir", dataDir, "--demo-entities", "300", "--vector-snapshot-interval", "3s"];
    const embed = new HashedNgramEmbedder(384);
    const post = (url: string, path: string, body: unknown) => fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const queries = [
      { view: "claims", entity: { claim_id: 3 }, k: 5 },
      { view: "claims", text: "5G towers spreading the virus", k: 5, filter: { language: "en" } },
      { view: "claims", text: "radio towers in Lisbon make pigeons sick", k: 3 },
    ];
    const answers = async (url: string) => Promise.all(queries.map(async (q) => ((await (await post(url, "/v1/match", q)).json()) as { matches: unknown[] }).matches));

    const first = await startQuiver(args, 60_000);
    try {
      const manifest = join(dataDir, "vector", "claims@1.snapshot.json");
      for (let i = 0; i < 600 && !existsSync(manifest); i++) await Bun.sleep(100);
      expect(existsSync(manifest)).toBe(true);
      // Written after the snapshot: only the durable store has it when the process dies.
      const text = "Radio towers in Lisbon make pigeons sick this spring";
      const pushed = await post(first.url, "/v1/push", {
        featureView: "claims",
        rows: [{ claim_id: 777777, text, verdict: "false", source: "tiktok", language: "pt", first_seen: 1, cluster: -1, embedding: embed.embedNow(text) }],
      });
      expect(pushed.status).toBe(200);
      // The index follows the feed asynchronously (re-reading the row): wait until the claim is matched.
      let before = await answers(first.url);
      for (let i = 0; i < 100 && !JSON.stringify(before[2]).includes("777777"); i++) {
        await Bun.sleep(50);
        before = await answers(first.url);
      }
      expect(JSON.stringify(before[2])).toContain("777777");
      expect(await first.stop("SIGKILL")).not.toBe(0);

      const second = await startQuiver(args, 60_000);
      try {
        expect(await answers(second.url)).toEqual(before);
        const metrics = await (await fetch(`${second.url}/metrics`)).text();
        expect(metrics).toMatch(/quiver_vector_build_duration_seconds_count\{view="claims",kind="catch_up"\} 1/);
        expect(metrics).not.toMatch(/kind="build"/);
      } finally {
        await second.stop();
      }
    } finally {
      if (first.proc.exitCode === null) await first.stop("SIGKILL");
    }
  }, 120_000);
});
