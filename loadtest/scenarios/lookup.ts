import { DEMO_KEY_SPACES, findView, pickFeatures } from "./demo-catalog.ts";
import { lookupBody } from "./bodies.ts";
import type { Scenario, ScenarioOptions, ScenarioPlan } from "./scenario.ts";

function lookupPlan(o: ScenarioOptions, msgpack: boolean): ScenarioPlan {
  const view = findView(o.view);
  const body = lookupBody(view, pickFeatures(view, o.features), o.batch);
  return {
    protocol: "http1",
    keySpaces: DEMO_KEY_SPACES,
    requests: [
      {
        tag: "lookup",
        weight: 1,
        method: "POST",
        path: "/v1/lookup",
        headers: msgpack ? { Accept: "application/msgpack" } : undefined,
        body: { encoding: msgpack ? "msgpack" : "json", value: body },
      },
    ],
  };
}

/** POST /v1/lookup, JSON, `--batch` entity rows (1 by default). */
export const lookupScenario: Scenario = {
  name: "lookup",
  summary: "POST /v1/lookup (JSON), --batch rows (default 1) of --view",
  defaultBatch: 1,
  build: (o) => lookupPlan(o, false),
};

/** The same endpoint with 100 rows unless `--batch` says otherwise. */
export const batchLookupScenario: Scenario = {
  name: "batch-lookup",
  summary: "POST /v1/lookup (JSON) with --batch rows (default 100)",
  defaultBatch: 100,
  build: (o) => lookupPlan(o, false),
};

/** MessagePack request and response (int join keys only: keys are fixed-width uint32). */
export const msgpackLookupScenario: Scenario = {
  name: "lookup-msgpack",
  summary: "POST /v1/lookup with MessagePack request and response",
  defaultBatch: 1,
  build: (o) => lookupPlan(o, true),
};
