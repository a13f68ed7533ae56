import type { Scenario } from "./scenario.ts";

/** A plain GET of `--path` (default /healthz): baselines, smoke tests, bare servers. */
export const getScenario: Scenario = {
  name: "get",
  summary: "GET --path (default /healthz)",
  defaultBatch: 1,
  build: (o) => ({ protocol: "http1", keySpaces: [], requests: [{ tag: "get", weight: 1, method: "GET", path: o.path }] }),
};
