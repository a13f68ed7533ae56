import { DEMO_KEY_SPACES, findView, pickFeatures } from "./demo-catalog.ts";
import { feastBody } from "./bodies.ts";
import type { Scenario } from "./scenario.ts";

/** Feast-compatible POST /get-online-features with columnar entities. */
export const feastScenario: Scenario = {
  name: "feast",
  summary: "POST /get-online-features (Feast), --batch rows (default 1)",
  defaultBatch: 1,
  build(o) {
    const view = findView(o.view);
    return {
      protocol: "http1",
      keySpaces: DEMO_KEY_SPACES,
      requests: [{ tag: "feast", weight: 1, method: "POST", path: "/get-online-features", body: { encoding: "json", value: feastBody(view, pickFeatures(view, o.features), o.batch) } }],
    };
  },
};
