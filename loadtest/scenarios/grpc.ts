import { feastLookupTemplate, quiverLookupTemplate } from "../grpc/request-bytes.ts";
import { DEMO_KEY_SPACES, findView, pickFeatures, type ViewInfo } from "./demo-catalog.ts";
import type { Scenario, ScenarioOptions, ScenarioPlan } from "./scenario.ts";

/** The view's single integer join key (gRPC templates write fixed-width int64 keys). */
function intKey(view: ViewInfo): { name: string; space: (typeof DEMO_KEY_SPACES)[number] } {
  const [key, more] = view.joinKeys;
  if (key === undefined || more !== undefined) throw new Error(`--view: gRPC scenarios need a view with one join key; ${view.name} has ${view.joinKeys.length}`);
  return { name: key.name, space: DEMO_KEY_SPACES[key.space]! };
}

function plan(o: ScenarioOptions, service: "quiver" | "feast"): ScenarioPlan {
  const view = findView(o.view);
  const refs = pickFeatures(view, o.features).map((f) => `${view.name}:${f.name}`);
  const key = intKey(view);
  return service === "quiver"
    ? { protocol: "grpc", requests: [{ weight: 1, path: "/quiver.v1.FeatureService/Lookup", template: quiverLookupTemplate("grpc-lookup", refs, key, o.batch) }] }
    : { protocol: "grpc", requests: [{ weight: 1, path: "/feast.serving.ServingService/GetOnlineFeatures", template: feastLookupTemplate("grpc-feast", refs, key, o.batch) }] };
}

/** quiver.v1.FeatureService/Lookup over gRPC (--target is the gRPC port, e.g. http://127.0.0.1:6570). */
export const grpcLookupScenario: Scenario = {
  name: "grpc-lookup",
  summary: "gRPC quiver.v1 Lookup, --batch rows (default 1) of --view (int join key); --target = the gRPC port",
  defaultBatch: 1,
  build: (o) => plan(o, "quiver"),
};

/** Feast's feast.serving.ServingService/GetOnlineFeatures over gRPC. */
export const grpcFeastScenario: Scenario = {
  name: "grpc-feast",
  summary: "gRPC Feast GetOnlineFeatures, --batch rows (default 1) of --view (int join key); --target = the gRPC port",
  defaultBatch: 1,
  build: (o) => plan(o, "feast"),
};
