import { describe, expect, test } from "bun:test";
import { QuiverError } from "../errors/index.ts";
import { compileRegistry } from "../registry/read-definitions.ts";
import { parseMatchRequest } from "./match-request.ts";

const registry = compileRegistry({
  entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
  featureViews: [
    {
      name: "items",
      entities: ["item"],
      features: [
        { name: "tag", type: "string" },
        { name: "vec", type: "embedding(8)" },
      ],
      index: { feature: "vec", M: 8, efConstruction: 32 },
    },
  ],
});
const vector = [1, 0, 0, 0, 0, 0, 0, 0];
const limits = { maxRows: 10, maxValues: 50 };

/** The 400's path, or "ok" when the request is accepted. */
function refusal(body: Record<string, unknown>): string {
  try {
    parseMatchRequest({ view: "items", vector, ...body }, registry, limits);
    return "ok";
  } catch (e) {
    if (!(e instanceof QuiverError)) throw e;
    return `${e.code} ${e.path}`;
  }
}

describe("parseMatchRequest", () => {
  test("text with no letters or digits is refused naming text: the hashed-ngrams embedder has nothing to embed", () => {
    const withEmbedder = compileRegistry({
      entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
      featureViews: [{ name: "items", entities: ["item"], features: [{ name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 32, embedder: "hashed-ngrams" } }],
    });
    const parse = (text: string) => {
      try {
        return parseMatchRequest({ view: "items", text }, withEmbedder, limits).query.kind;
      } catch (e) {
        if (!(e instanceof QuiverError)) throw e;
        return `${e.code} ${e.path}`;
      }
    };
    // Embedded as the embedder's fixed fallback vector, it matched whatever claims lay nearest that direction.
    expect(parse("!!!???")).toBe("invalid_request text");
    expect(parse("🔥 — …")).toBe("invalid_request text");
    expect(parse("5G?")).toBe("text");
  });

  test("a feature asked for twice, or two features answering one column name, is refused naming the second, as lookups do", () => {
    const two = compileRegistry({
      entities: [{ name: "item", joinKeys: [{ name: "item_id", type: "int64" }] }],
      featureViews: [
        { name: "items", entities: ["item"], features: [{ name: "tag", type: "string" }, { name: "vec", type: "embedding(8)" }], index: { feature: "vec", M: 8, efConstruction: 32 } },
        { name: "more", entities: ["item"], features: [{ name: "tag", type: "string" }] },
      ],
    });
    const parse = (features: string[]) => {
      try {
        return parseMatchRequest({ view: "items", vector, k: 2, features }, two, limits).refs.length;
      } catch (e) {
        if (!(e instanceof QuiverError)) throw e;
        return `${e.code} ${e.path}`;
      }
    };
    // Accepted: the answer named two columns "tag" (featureNames), and a client reading them into a map kept one.
    expect(parse(["items:tag", "items:vec", "items:tag"])).toBe("feature_name_collision features[2]");
    expect(parse(["items:tag", "more:tag"])).toBe("feature_name_collision features[1]");
    expect(parse(["items:tag", "items:vec"])).toBe(2);
  });

  test("the features joined onto k matches are held to the lookup limits (--max-rows, --max-lookup-values)", () => {
    // Joined without these checks: k 500 × embedding(384) answered 1.65 MB under limits of 100 rows and 10,000 values.
    expect(refusal({ k: 11, features: ["items:tag"] })).toBe("too_many_rows k");
    expect(refusal({ k: 6, features: ["items:tag", "items:vec"] })).toBe("too_many_values features");
    expect(refusal({ k: 5, features: ["items:tag", "items:vec"] })).toBe("ok");
    // Matches alone are not a lookup.
    expect(refusal({ k: 1000 })).toBe("ok");
  });
});
