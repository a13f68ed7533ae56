import { feastScenario } from "./feast.ts";
import { getScenario } from "./get.ts";
import { grpcFeastScenario, grpcLookupScenario } from "./grpc.ts";
import { batchLookupScenario, lookupScenario, msgpackLookupScenario } from "./lookup.ts";
import { matchScenario } from "./match.ts";
import { mixedScenario, pushScenario } from "./push.ts";
import type { Scenario } from "./scenario.ts";

export type { Scenario, ScenarioOptions, ScenarioPlan } from "./scenario.ts";

/**
 * The scenario registry. A new scenario (gRPC lookup, claim matching) is a module
 * exporting a `Scenario` plus one line here.
 */
export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map(
  [lookupScenario, batchLookupScenario, msgpackLookupScenario, feastScenario, pushScenario, mixedScenario, getScenario, matchScenario, grpcLookupScenario, grpcFeastScenario].map((s) => [
    s.name,
    s,
  ]),
);

export function getScenarioByName(name: string): Scenario {
  const s = SCENARIOS.get(name);
  if (s === undefined) throw new Error(`--scenario: unknown "${name}" (known: ${[...SCENARIOS.keys()].join(", ")})`);
  return s;
}
