import { DEMO_KEY_SPACES, findView } from "./demo-catalog.ts";
import { lookupBody, pushBody } from "./bodies.ts";
import type { RequestSpec } from "../template.ts";
import type { Scenario, ScenarioOptions } from "./scenario.ts";

/** Distinct value sets per write; keys vary per request, values rotate among these. */
const VALUE_VARIANTS = 8;

function pushRequests(o: ScenarioOptions, weight: number): RequestSpec[] {
  const view = findView(o.view);
  const out: RequestSpec[] = [];
  // A server started with --admin-token refuses writes without it (401).
  const headers = o.token === undefined ? undefined : { Authorization: `Bearer ${o.token}` };
  for (let i = 0; i < VALUE_VARIANTS; i++) {
    out.push({ tag: "push", weight: weight / VALUE_VARIANTS, method: "POST", path: "/v1/push", headers, body: { encoding: "json", value: pushBody(view, o.batch, o.rng) } });
  }
  return out;
}

/** POST /v1/push of whole rows (`--batch` rows per request, default 1). */
export const pushScenario: Scenario = {
  name: "push",
  summary: "POST /v1/push, --batch rows (default 1) of --view",
  defaultBatch: 1,
  build: (o) => ({ protocol: "http1", keySpaces: DEMO_KEY_SPACES, requests: pushRequests(o, 1) }),
};

/** Reads and writes on the same key space; `--write-ratio` of requests are pushes. */
export const mixedScenario: Scenario = {
  name: "mixed",
  summary: "lookups and pushes, --write-ratio writes (default 0.1), --batch rows each",
  defaultBatch: 1,
  build(o) {
    if (!(o.writeRatio >= 0 && o.writeRatio <= 1)) throw new Error(`--write-ratio: expected 0..1, got ${o.writeRatio}`);
    const view = findView(o.view);
    const read: RequestSpec = { tag: "lookup", weight: 1 - o.writeRatio, method: "POST", path: "/v1/lookup", body: { encoding: "json", value: lookupBody(view, view.features, o.batch) } };
    const writes = o.writeRatio > 0 ? pushRequests(o, o.writeRatio) : [];
    return { protocol: "http1", keySpaces: DEMO_KEY_SPACES, requests: o.writeRatio < 1 ? [read, ...writes] : writes };
  },
};
