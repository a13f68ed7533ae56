import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { compileJoinKey } from "../registry/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { claimText, clusterOfClaim } from "./demo-claims.ts";
import { createEmbedder } from "./embedders.ts";
import { decodeEntityKey } from "./entity-key.ts";
import { HashedNgramEmbedder, normalise } from "./hashed-ngram-embedder.ts";

const cos = (a: readonly number[], b: readonly number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe("HashedNgramEmbedder", () => {
  const e = new HashedNgramEmbedder(384);

  test("deterministic, L2-normalised, of the asked dimension; batch equals one by one", async () => {
    const v = e.embedNow("The new flu vaccine causes infertility");
    expect(v.length).toBe(384);
    expect(cos(v, v)).toBeCloseTo(1, 10);
    expect(new HashedNgramEmbedder(384).embedNow("The new flu vaccine causes infertility")).toEqual(v);
    expect(await e.embed(["a b c", "The new flu vaccine causes infertility"])).toEqual([e.embedNow("a b c"), v]);
  });

  test("case, punctuation and spacing do not matter; text without letters still gets a direction", () => {
    expect(normalise("  BREAKING!!!   5G -- towers?? ")).toBe("breaking 5g towers");
    expect(e.embedNow("5G towers, BREAKING!")).toEqual(e.embedNow("5g towers breaking"));
    const empty = e.embedNow("?!…");
    expect(cos(empty, empty)).toBeCloseTo(1, 10);
  });

  test("lexical: a reworded copy is closer than a different claim on the same topic", () => {
    const a = e.embedNow("5G towers are spreading the virus among city dwellers in Nairobi last week");
    const copy = e.embedNow("BREAKING: 5G towres are spreading the virus among city dwellers in Nairobi!!");
    const other = e.embedNow("5G towers cause brain tumours in school children in Texas this year");
    expect(cos(a, copy)).toBeGreaterThan(cos(a, other) + 0.2);
  });

  test("demo claims: five per cluster, all distinct texts", () => {
    const texts = new Set<string>();
    for (let id = 1; id <= 2000; id++) texts.add(claimText(id));
    expect(texts.size).toBe(2000);
    expect([1, 5, 6, 10, 11].map(clusterOfClaim)).toEqual([0, 0, 1, 1, 2]);
  });
});

describe("createEmbedder", () => {
  const view = (embedder?: string) =>
    compileRegistry({
      entities: [{ name: "c", joinKeys: [{ name: "id", type: "int64" }] }],
      featureViews: [{ name: "v", entities: ["c"], features: [{ name: "e", type: "embedding(16)" }], index: { feature: "e", ...(embedder ? { embedder } : {}) } }],
    }).views.get("v")!;

  test("none configured: undefined (text queries are refused); hashed-ngrams: the view's dimension", () => {
    expect(createEmbedder(view(), { modelPath: "" })).toBeUndefined();
    expect(createEmbedder(view("hashed-ngrams"), { modelPath: "" })!.dim).toBe(16);
  });

  test("onnx refuses to start, naming the setting: no model path, a missing file, no runtime bundled", () => {
    expect(() => createEmbedder(view("onnx"), { modelPath: "" })).toThrow("needs --embedder-model");
    expect(() => createEmbedder(view("onnx"), { modelPath: "/nonexistent/model.onnx" })).toThrow("--embedder-model: no file at /nonexistent/model.onnx");
    const dir = mkdtempSync(`${tmpdir()}/quiver-onnx-`);
    try {
      writeFileSync(`${dir}/m.onnx`, "not really a model");
      expect(() => createEmbedder(view("onnx"), { modelPath: `${dir}/m.onnx` })).toThrow("no ONNX runtime");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("decodeEntityKey", () => {
  const keys = [compileJoinKey("driver_id", "int64"), compileJoinKey("customer_id", "string")];
  test("inverts the storage key layout, strings with separators included", () => {
    expect(decodeEntityKey("driver_id=i1001;customer_id=s5:a;b=c", keys)).toEqual({ driver_id: 1001, customer_id: "a;b=c" });
    expect(decodeEntityKey("driver_id=i9223372036854775807;customer_id=s0:", keys)).toEqual({ driver_id: 9223372036854775807n, customer_id: "" });
    expect(decodeEntityKey("driver_id=i-9223372036854775808;customer_id=s0:", keys)).toEqual({ driver_id: -(2n ** 63n), customer_id: "" });
  });
  test("answers undefined for keys of another layout", () => {
    expect(decodeEntityKey("driver_id=i1", keys)).toBeUndefined();
    expect(decodeEntityKey("customer_id=s1:a;driver_id=i1", keys)).toBeUndefined();
    expect(decodeEntityKey("driver_id=x1;customer_id=s1:a", keys)).toBeUndefined();
  });
});
