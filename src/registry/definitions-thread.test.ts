import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { QuiverError } from "../errors/index.ts";
import { readRegistryDef } from "./definitions-thread.ts";
import { loadRegistryFile } from "./load-registry.ts";
import { compileRegistry, parseDefinitionsText } from "./read-definitions.ts";

const EXAMPLE = "src/registry/example-registry.yaml";

/** The error a read rejects with, as the fields a caller sees. */
async function rejection(p: Promise<unknown>): Promise<{ kind: string; code: string; message: string; path: string | undefined; issues: readonly unknown[] }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(QuiverError);
    const q = e as QuiverError;
    return { kind: q.kind, code: q.code, message: q.message, path: q.path, issues: q.issues };
  }
  throw new Error("expected the read to be rejected");
}

describe("reading definitions in a worker", () => {
  test("the worker's reading is the in-thread one: same definitions, same compiled registry and digest", async () => {
    const text = readFileSync(EXAMPLE, "utf8");
    const inWorker = await readRegistryDef(text, EXAMPLE);
    expect(inWorker).toEqual(await readRegistryDef(text, EXAMPLE, { worker: false }));
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
    const fromWorker = await rejection(readRegistryDef(bad, "bad.yaml"));
    expect(fromWorker).toEqual(await rejection(readRegistryDef(bad, "bad.yaml", { worker: false })));
    expect(fromWorker.kind).toBe("invalid_argument");
    expect(fromWorker.code).toBe("invalid_registry");
    expect(fromWorker.message).toMatch(/^bad\.yaml: not valid YAML\/JSON: /);
  });

  test("structural problems: every issue, located, from the worker as in-thread", async () => {
    const text = JSON.stringify({ entities: [{ name: "driver", joinKeys: [] }], featureViews: [{ name: "9bad", entities: ["driver"] }] });
    const fromWorker = await rejection(readRegistryDef(text, "defs.json"));
    expect(fromWorker).toEqual(await rejection(readRegistryDef(text, "defs.json", { worker: false })));
    const paths = fromWorker.issues.map((i) => (i as { path: string }).path);
    expect(paths).toContain("entities[0].joinKeys");
    expect(paths).toContain("featureViews[0].name");
    expect(paths).toContain("featureViews[0].features");
  });

  test("a problem of meaning (an unknown entity) is found after the worker, in compile-registry", async () => {
    const text = JSON.stringify({ entities: [], featureViews: [{ name: "v", entities: ["nobody"], features: [{ name: "f", type: "int64" }] }] });
    const def = await readRegistryDef(text, "defs.json");
    expect(() => compileRegistry(def)).toThrow(/featureViews\[0\]\.entities\[0\]/);
  });

  test("a worker that does not answer in time is stopped and the read fails with the file's name", async () => {
    const huge = `a: [${"1,".repeat(2_000_000)}1]`;
    await expect(readRegistryDef(huge, "huge.yaml", { timeoutMs: 1 })).rejects.toThrow(/huge\.yaml: no answer from the definitions worker in 1 ms/);
  });
});
