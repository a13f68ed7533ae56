import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QuiverError } from "../errors/index.ts";
import { REGISTRY_READER, loadRegistryFile } from "../registry/load-registry.ts";
import { compileRegistry, parseDefinitionsText } from "../registry/read-definitions.ts";
import { loadTopology } from "../shard/topology.ts";
import { readOffThread, type TextReader } from "./off-thread.ts";

const EXAMPLE = "src/registry/example-registry.yaml";

/** The error a read rejects with, as the fields a caller sees. */
async function rejection(p: Promise<unknown>): Promise<{ kind: string; code: string; message: string; path: string | undefined; issues: readonly unknown[]; retryable: boolean }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(QuiverError);
    const q = e as QuiverError;
    return { kind: q.kind, code: q.code, message: q.message, path: q.path, issues: q.issues, retryable: q.retryable };
  }
  throw new Error("expected the read to be rejected");
}

describe("reading files in a worker", () => {
  test("the worker's reading is the in-thread one: same definitions, same compiled registry and digest", async () => {
    const text = readFileSync(EXAMPLE, "utf8");
    const inWorker = await readOffThread(REGISTRY_READER, text, EXAMPLE);
    expect(inWorker).toEqual(await readOffThread(REGISTRY_READER, text, EXAMPLE, { worker: false }));
    const loaded = await loadRegistryFile(EXAMPLE, 1000);
    const direct = compileRegistry(parseDefinitionsText(text, EXAMPLE), 1000);
    expect(loaded.digest).toBe(direct.digest);
    expect([...loaded.refs.keys()]).toEqual([...direct.refs.keys()]);
    expect(loaded.views.get("driver_hourly_stats")!.features.map((f) => [f.name, f.typeName, f.defaultValue])).toEqual(
      direct.views.get("driver_hourly_stats")!.features.map((f) => [f.name, f.typeName, f.defaultValue]),
    );
  });

  test("text that is not YAML: the same located error from the worker as in-thread", async () => {
    const bad = "entities: [\n  - name: x\n";
    const fromWorker = await rejection(readOffThread(REGISTRY_READER, bad, "bad.yaml"));
    expect(fromWorker).toEqual(await rejection(readOffThread(REGISTRY_READER, bad, "bad.yaml", { worker: false })));
    expect(fromWorker.kind).toBe("invalid_argument");
    expect(fromWorker.code).toBe("invalid_registry");
    expect(fromWorker.message).toMatch(/^bad\.yaml: not valid YAML\/JSON: /);
  });

  test("structural problems: every issue, located, from the worker as in-thread", async () => {
    const text = JSON.stringify({ entities: [{ name: "driver", joinKeys: [] }], featureViews: [{ name: "9bad", entities: ["driver"] }] });
    const fromWorker = await rejection(readOffThread(REGISTRY_READER, text, "defs.json"));
    expect(fromWorker).toEqual(await rejection(readOffThread(REGISTRY_READER, text, "defs.json", { worker: false })));
    const paths = fromWorker.issues.map((i) => (i as { path: string }).path);
    expect(paths).toContain("entities[0].joinKeys");
    expect(paths).toContain("featureViews[0].name");
    expect(paths).toContain("featureViews[0].features");
  });

  test("a problem of meaning (an unknown entity) is found after the worker, by the compiler", async () => {
    const text = JSON.stringify({ entities: [], featureViews: [{ name: "v", entities: ["nobody"], features: [{ name: "f", type: "int64" }] }] });
    const def = await readOffThread(REGISTRY_READER, text, "defs.json");
    expect(() => compileRegistry(def)).toThrow(/featureViews\[0\]\.entities\[0\]/);
  });

  test("a topology that is not YAML names the file; its meaning is checked after the worker", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-off-thread-"));
    try {
      writeFileSync(join(dir, "bad.yaml"), "shards: [\n");
      writeFileSync(join(dir, "empty.yaml"), "shards: []\n");
      const bad = await rejection(loadTopology(join(dir, "bad.yaml")));
      expect(bad).toMatchObject({ kind: "invalid_argument", code: "invalid_topology", path: "(file)" });
      expect(bad.message).toStartWith(`${join(dir, "bad.yaml")}: not valid YAML/JSON: `);
      expect((await rejection(loadTopology(join(dir, "empty.yaml")))).message).toStartWith(`${join(dir, "empty.yaml")}: `);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a reader that throws something else fails as internal, naming the file; a missing reader is named", async () => {
    // compileRegistryDef given text, not definitions, throws a TypeError (no `entities` to walk), not a QuiverError.
    const throwing: TextReader = { module: new URL("../registry/compile-registry.ts", import.meta.url).href, name: "compileRegistryDef" };
    const failed = await rejection(readOffThread(throwing, "x", "odd.yaml"));
    expect(failed).toMatchObject({ kind: "internal", code: "internal" });
    expect(failed.message).toStartWith("reading odd.yaml: ");
    const missing: TextReader = { module: new URL("./off-thread.ts", import.meta.url).href, name: "noSuchReader" };
    expect((await rejection(readOffThread(missing, "x", "odd.yaml"))).message).toContain("has no reader function noSuchReader");
    await expect(readOffThread(missing, "x", "odd.yaml", { worker: false })).rejects.toThrow(/has no reader function noSuchReader/);
  });

  test("a worker that does not answer in time is stopped and the read fails with the file's name", async () => {
    const huge = `a: [${"1,".repeat(2_000_000)}1]`;
    await expect(readOffThread(REGISTRY_READER, huge, "huge.yaml", { timeoutMs: 1 })).rejects.toThrow(/huge\.yaml: no answer from the reader's worker in 1 ms/);
  });
});
