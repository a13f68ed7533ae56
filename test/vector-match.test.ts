import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { clusterOfClaim } from "../src/vector/demo-claims.ts";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";

/** POST /v1/match end to end in-process: the example registry's `claims` view with 500 demo claims (100 clusters of 5). */
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
let q: Quiver;
let dir: string;
let registryPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "quiver-match-"));
  registryPath = join(dir, "registry.yaml");
  copyFileSync("src/registry/example-registry.yaml", registryPath);
  q = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "500"], {}), { clock: () => NOW });
}, 60_000);
afterAll(async () => {
  await q.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (path: string, body: unknown) => q.http.app.request(path, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json" } });

interface MatchBody {
  featureNames: string[];
  matches: { entity: { claim_id: number }; score: number; distance: number; values: unknown[]; statuses: string[] }[];
}
async function match(body: unknown): Promise<MatchBody> {
  const res = await post("/v1/match", body);
  const json = await res.json();
  if (res.status !== 200) throw new Error(`match answered ${res.status}: ${JSON.stringify(json)}`);
  return json as MatchBody;
}
async function errorOf(body: unknown): Promise<{ status: number; code: string; path?: string; message: string }> {
  const res = await post("/v1/match", body);
  const json = (await res.json()) as { error: { code: string; path?: string; message: string } };
  return { status: res.status, ...json.error };
}
const embed = new HashedNgramEmbedder(384);

describe("POST /v1/match on the demo claims", () => {
  test("an entity's near-duplicates are the other claims of its cluster, best first, with features and statuses", async () => {
    let found = 0;
    for (const id of [1, 52, 203, 377, 499]) {
      const body = await match({ view: "claims", entity: { claim_id: id }, k: 4, features: ["claims:text", "claims:cluster", "claims:verdict"] });
      expect(body.featureNames).toEqual(["text", "cluster", "verdict"]);
      expect(body.matches.length).toBe(4);
      for (const m of body.matches) {
        expect(m.entity.claim_id).not.toBe(id);
        expect(m.statuses).toEqual(["PRESENT", "PRESENT", "PRESENT"]);
        expect(m.values[1]).toBe(clusterOfClaim(m.entity.claim_id));
        if (clusterOfClaim(m.entity.claim_id) === clusterOfClaim(id)) found++;
      }
      for (let i = 1; i < body.matches.length; i++) expect(body.matches[i]!.score).toBeLessThanOrEqual(body.matches[i - 1]!.score);
    }
    expect(found).toBeGreaterThanOrEqual(16);
  });

  test("ground truth: over 100 claims, ≥ 85% of the top 4 matches are paraphrases from the same cluster", async () => {
    let mates = 0;
    for (let id = 1; id <= 100; id++) {
      const body = await match({ view: "claims", entity: { claim_id: id }, k: 4 });
      for (const m of body.matches) if (clusterOfClaim(m.entity.claim_id) === clusterOfClaim(id)) mates++;
    }
    console.log(`cluster mates in the top 4: ${mates / 400}`);
    expect(mates / 400).toBeGreaterThanOrEqual(0.85);
  });

  test("a text query finds a reworded claim (the built-in embedder is lexical)", async () => {
    const body = await match({ view: "claims", text: "BREAKING!!! the new flu vaccine causes infertility in young women in Manila", k: 3, features: ["claims:text"] });
    expect(clusterOfClaim(body.matches[0]!.entity.claim_id)).toBe(0);
  });

  test("a vector query: score is the cosine similarity and distance 1 − score", async () => {
    const body = await match({ view: "claims", vector: embed.embedNow("The new flu vaccine causes infertility in young women in Manila this spring."), k: 1 });
    expect(body.matches[0]!.entity.claim_id).toBe(1);
    expect(body.matches[0]!.score).toBeCloseTo(1, 4);
    expect(body.matches[0]!.distance).toBeCloseTo(0, 4);
    expect(body.matches[0]!.values).toEqual([]);
  });

  test("a vector element written as an integer literal past 2^53 is taken as its float64, as a push takes it", async () => {
    // The body parser keeps such literals exact (bigints, for int64s); the vector check took one for "not a finite number".
    const v = embed.embedNow("The new flu vaccine causes infertility in young women in Manila this spring.");
    const scaled = v.map((x) => Math.round(x * 1e17));
    const text = JSON.stringify({ view: "claims", vector: scaled, k: 1 });
    expect(text).toMatch(/[-\[,]\d{17}/);
    const body = await match(text);
    expect(body.matches[0]!.entity.claim_id).toBe(1);
    expect(body.matches[0]!.score).toBeCloseTo(1, 4);
  });

  test("minScore drops weaker matches", async () => {
    const all = await match({ view: "claims", entity: { claim_id: 1 }, k: 50 });
    const cut = all.matches[3]!.score;
    const strong = await match({ view: "claims", entity: { claim_id: 1 }, k: 50, minScore: cut });
    expect(strong.matches.length).toBeGreaterThanOrEqual(4);
    expect(strong.matches.length).toBeLessThan(50);
    for (const m of strong.matches) expect(m.score).toBeGreaterThanOrEqual(cut);
  });

  test("filters on scalar features hold for every match, including lists of accepted values", async () => {
    const body = await match({ view: "claims", entity: { claim_id: 1 }, k: 20, filter: { language: "en", source: ["twitter", "telegram"] }, features: ["claims:language", "claims:source"] });
    expect(body.matches.length).toBe(20);
    for (const m of body.matches) {
      expect(m.values[0]).toBe("en");
      expect(["twitter", "telegram"]).toContain(m.values[1] as string);
    }
    const none = await match({ view: "claims", entity: { claim_id: 1 }, k: 5, filter: { verdict: "no such verdict" } });
    expect(none.matches).toEqual([]);
  });

  test("a pushed claim is matched at once; an update moves it; features are joined from the store", async () => {
    const text = "Drinking bleach with honey cures the flu in two days say doctors in Lisbon";
    const push = await post("/v1/push", {
      featureView: "claims",
      rows: [{ claim_id: 900001, text, verdict: "false", source: "whatsapp", language: "en", first_seen: NOW, cluster: -1, embedding: embed.embedNow(text), event_timestamp: NOW - 10 }],
    });
    expect(push.status).toBe(200);
    await q.vectors.idle();
    const found = await match({ view: "claims", text: "drinking bleach with honey cures flu", k: 1, features: ["claims:verdict"] });
    expect(found.matches[0]!.entity.claim_id).toBe(900001);
    expect(found.matches[0]!.values).toEqual(["false"]);

    const moved = "Eating raw garlic every morning stops all strokes in Madrid";
    await post("/v1/push", {
      featureView: "claims",
      rows: [{ claim_id: 900001, text: moved, verdict: "false", source: "whatsapp", language: "en", first_seen: NOW, cluster: -1, embedding: embed.embedNow(moved), event_timestamp: NOW - 5 }],
    });
    await q.vectors.idle();
    const again = await match({ view: "claims", text: moved, k: 1 });
    expect(again.matches[0]!.entity.claim_id).toBe(900001);
    expect(again.matches[0]!.score).toBeCloseTo(1, 4);
    const old = await match({ view: "claims", text: "drinking bleach with honey cures flu", k: 5 });
    expect(old.matches.map((m) => m.entity.claim_id)).not.toContain(900001);
  });

  test("an embedding too long for the index's 32-bit floats is refused with 400, and matching stays sound", async () => {
    const before = await match({ view: "claims", text: "5G towers are spreading the virus", k: 3 });
    const push = await post("/v1/push", {
      featureView: "claims",
      rows: [{ claim_id: 900002, text: "x", verdict: "false", source: "whatsapp", language: "en", first_seen: NOW, cluster: -1, embedding: new Array(384).fill(1e200), event_timestamp: NOW - 10 }],
    });
    expect(push.status).toBe(400);
    const e = ((await push.json()) as { error: { path: string; message: string } }).error;
    expect(e.path).toBe("rows[0].embedding");
    expect(e.message).toContain("length (L2 norm)");
    await q.vectors.idle();
    const after = await match({ view: "claims", text: "5G towers are spreading the virus", k: 3 });
    expect(after.matches).toEqual(before.matches);
    for (const m of after.matches) expect(Number.isFinite(m.score)).toBe(true);
  });

  test("metrics report searches, latency, size, deleted ratio, builds and feed lag", async () => {
    const text = await (await q.http.app.request("/metrics")).text();
    for (const name of [
      "quiver_vector_searches_total",
      "quiver_vector_search_duration_seconds",
      "quiver_vector_index_size",
      "quiver_vector_index_deleted_ratio",
      "quiver_vector_build_duration_seconds",
      "quiver_vector_feed_lag_seconds",
      "quiver_vector_feed_pending",
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/quiver_vector_index_size\{view="claims"\} 50\d/);
  });
});

describe("POST /v1/match rejects bad input with 400 naming the field", () => {
  const vec = () => embed.embedNow("x");
  const cases: [string, unknown, string, string?][] = [
    ["not an object", [1, 2], "(body)"],
    ["unknown field", { view: "claims", vector: vec(), top: 3 }, "top"],
    ["missing view", { vector: vec() }, "view"],
    ["unknown view", { view: "nope", vector: vec() }, "view"],
    ["view without an index", { view: "driver_hourly_stats", vector: vec() }, "view", "no vector index"],
    ["no query", { view: "claims" }, "vector"],
    ["two queries", { view: "claims", vector: vec(), text: "hi" }, "text"],
    ["wrong dimension", { view: "claims", vector: [1, 2, 3] }, "vector", "expected 384 dimensions, got 3"],
    ["non-finite number", { view: "claims", vector: [...vec().slice(0, 383), "NaN"] }, "vector", "element 383"],
    ["zero vector", { view: "claims", vector: new Array(384).fill(0) }, "vector", "zero vector"],
    ["a vector of 32-bit float zeros", { view: "claims", vector: new Array(384).fill(1e-46) }, "vector", "zero vector"],
    ["a vector too long for 32-bit floats", { view: "claims", vector: new Array(384).fill(1e200) }, "vector", "length (L2 norm)"],
    ["vector not an array", { view: "claims", vector: "abc" }, "vector"],
    ["k zero", { view: "claims", vector: vec(), k: 0 }, "k"],
    ["k above 1000", { view: "claims", vector: vec(), k: 1001 }, "k"],
    ["k not an integer", { view: "claims", vector: vec(), k: 2.5 }, "k"],
    ["minScore not a number", { view: "claims", vector: vec(), minScore: "high" }, "minScore"],
    ["efSearch out of range", { view: "claims", vector: vec(), efSearch: 0 }, "efSearch"],
    ["filter not an object", { view: "claims", vector: vec(), filter: ["en"] }, "filter"],
    ["filter on unknown feature", { view: "claims", vector: vec(), filter: { colour: "red" } }, "filter.colour"],
    ["filter on the embedding", { view: "claims", vector: vec(), filter: { embedding: 1 } }, "filter.embedding"],
    ["filter value of the wrong type", { view: "claims", vector: vec(), filter: { cluster: "seven" } }, "filter.cluster"],
    ["filter list element of the wrong type", { view: "claims", vector: vec(), filter: { language: ["en", 3] } }, "filter.language[1]"],
    ["empty filter list", { view: "claims", vector: vec(), filter: { language: [] } }, "filter.language"],
    ["unknown feature to join", { view: "claims", vector: vec(), features: ["claims:nope"] }, "features[0]"],
    ["feature of a view with other keys", { view: "claims", vector: vec(), features: ["driver_hourly_stats:conv_rate"] }, "features[0]"],
    ["entity not an object", { view: "claims", entity: 5 }, "entity"],
    ["entity with a foreign key", { view: "claims", entity: { driver_id: 5 } }, "entity.driver_id"],
    ["entity key of the wrong type", { view: "claims", entity: { claim_id: "abc" } }, "entity.claim_id"],
    ["empty text", { view: "claims", text: "  " }, "text"],
    ["text too long", { view: "claims", text: "a".repeat(10_001) }, "text"],
  ];
  for (const [what, body, path, message] of cases) {
    test(what, async () => {
      const e = await errorOf(body);
      expect(e.status).toBe(400);
      expect(e.path).toBe(path);
      if (message) expect(e.message).toContain(message);
    });
  }

  test("an entity that does not exist is a 404 naming the field", async () => {
    const e = await errorOf({ view: "claims", entity: { claim_id: 987654 } });
    expect(e.status).toBe(404);
    expect(e.path).toBe("entity");
  });

  test("malformed JSON and a GET are refused without a crash", async () => {
    expect((await post("/v1/match", "{nope")).status).toBe(400);
    expect((await q.http.app.request("/v1/match")).status).toBe(405);
  });
});

describe("registry changes", () => {
  test("a reshaped index is rebuilt in the background while the old one serves; efSearch applies at once", async () => {
    const before = await match({ view: "claims", entity: { claim_id: 7 }, k: 4 });
    const old = q.vectors.get("claims")!;
    const text = (await Bun.file("src/registry/example-registry.yaml").text()).replace("M: 16, efConstruction: 200, efSearch: 64", "M: 12, efConstruction: 100, efSearch: 80");
    writeFileSync(registryPath, text);
    const res = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(res.status).toBe(200);
    // Still answering from the old index while the new one builds.
    expect(q.vectors.get("claims")).toBe(old);
    expect((await match({ view: "claims", entity: { claim_id: 7 }, k: 4 })).matches.length).toBe(4);
    await q.vectors.idle();
    const rebuilt = q.vectors.get("claims")!;
    expect(rebuilt).not.toBe(old);
    expect(rebuilt.spec.M).toBe(12);
    expect(rebuilt.size).toBe(old.size);
    const after = await match({ view: "claims", entity: { claim_id: 7 }, k: 4 });
    expect(new Set(after.matches.map((m) => clusterOfClaim(m.entity.claim_id)))).toEqual(new Set(before.matches.map((m) => clusterOfClaim(m.entity.claim_id))));
  }, 60_000);

  test("a newly declared index answers 503 until built; a removed one is a 400", async () => {
    const base = await Bun.file(registryPath).text();
    const withIndex = base.replace(
      "      - { name: embedding, type: \"embedding(8)\", description: Taste embedding from the recommender. }",
      "      - { name: embedding, type: \"embedding(8)\", description: Taste embedding from the recommender. }\n    index: { feature: embedding, metric: l2, algorithm: brute-force }",
    );
    expect(withIndex).not.toBe(base);
    writeFileSync(registryPath, withIndex);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    const building = await post("/v1/match", { view: "customer_profile", entity: { customer_id: "c1" }, k: 3 });
    expect(building.status).toBe(503);
    await q.vectors.idle();
    const built = await match({ view: "customer_profile", entity: { customer_id: "c1" }, k: 3, features: ["fraud_signals:risk_score"] });
    expect(built.matches.length).toBe(3);
    expect(built.matches[0]!.statuses).toEqual(["PRESENT"]);
    writeFileSync(registryPath, base);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    const gone = await errorOf({ view: "customer_profile", entity: { customer_id: "c1" } });
    expect(gone.status).toBe(400);
    expect(gone.message).toContain("no vector index");
  }, 60_000);

  test("a feature added to the view rebuilds the index; filtering on it answers 503 until the rebuild is in", async () => {
    const base = await Bun.file(registryPath).text();
    const added = base.replace('      - { name: embedding, type: "embedding(384)" }', '      - { name: embedding, type: "embedding(384)" }\n      - { name: reviewed, type: bool }');
    expect(added).not.toBe(base);
    writeFileSync(registryPath, added);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    expect((await post("/v1/match", { view: "claims", entity: { claim_id: 7 }, k: 4, filter: { reviewed: true } })).status).toBe(503);
    expect((await match({ view: "claims", entity: { claim_id: 7 }, k: 4 })).matches.length).toBe(4);
    await q.vectors.idle();
    // Stored rows predate the feature (null), so nothing is reviewed yet.
    expect((await match({ view: "claims", entity: { claim_id: 7 }, k: 4, filter: { reviewed: true } })).matches).toEqual([]);
    writeFileSync(registryPath, base);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    await q.vectors.idle();
  }, 60_000);
  test("the index moved to an embedding of another dimension answers 503 until the rebuild is in, then matches in the new dimension", async () => {
    // After the test above: the stored layout has grown by "reviewed", and may only grow at its end.
    const base = await Bun.file(registryPath).text();
    const moved = base
      .replace('      - { name: embedding, type: "embedding(384)" }', '      - { name: embedding, type: "embedding(384)" }\n      - { name: reviewed, type: bool }\n      - { name: emb8, type: "embedding(8)" }')
      .replace("index: { feature: embedding,", "index: { feature: emb8,");
    expect(moved).not.toBe(base);
    writeFileSync(registryPath, moved);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    // The 8-d query reached the old 384-d index: 500 ("Invalid the given array length"), or null scores by brute force.
    const during = await errorOf({ view: "claims", vector: [1, 0, 0, 0, 0, 0, 0, 0], k: 3 });
    expect(during.status).toBe(503);
    expect(during.message).toContain("being rebuilt");
    await q.vectors.idle();
    // The stored rows have no emb8 yet: an empty index, answered as such.
    expect((await match({ view: "claims", vector: [1, 0, 0, 0, 0, 0, 0, 0], k: 3 })).matches).toEqual([]);
    writeFileSync(registryPath, base);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    await q.vectors.idle();
  }, 60_000);
});
