import { keyRef } from "../template.ts";
import { DEMO_KEY_SPACES, findView } from "./demo-catalog.ts";
import type { Scenario } from "./scenario.ts";

/**
 * POST /v1/match (claim matching): the nearest claims to a stored claim
 * (`entity` query, so the server reads its embedding, walks the index and
 * joins features), k=10, three features joined per match. Claim ids 1..--entities.
 */
export const matchScenario: Scenario = {
  name: "match",
  summary: "POST /v1/match: 10 nearest claims to a stored claim, 3 features joined",
  defaultBatch: 1,
  build() {
    const view = findView("claims");
    const key = view.joinKeys[0]!;
    return {
      protocol: "http1",
      keySpaces: DEMO_KEY_SPACES,
      requests: [
        {
          tag: "match",
          weight: 1,
          method: "POST",
          path: "/v1/match",
          body: { encoding: "json", value: { view: "claims", entity: { [key.name]: keyRef(0, key.space) }, k: 10, features: ["claims:verdict", "claims:source", "claims:language"] } },
        },
      ],
    };
  },
};
