import { QUIVER_LOOKUP, QUIVER_PUSH } from "../../serving/index.ts";
import { asObject, readBody, rejectUnknownFields, wantsMsgpack } from "./body.ts";
import { degradedHeaders, lookupDeadline } from "./deadline.ts";
import type { HttpDeps } from "./deps.ts";
import { nativeBody, staleHeaders } from "./encode-result.ts";
import { NativeAnswerEncoder } from "./native-answer.ts";
import { encodedAnswer, errorResponse, json, msgpack } from "./responses.ts";
import { type AddRoute, instrument, type RouteMetrics } from "./route.ts";

const LOOKUP_FIELDS = new Set(["features", "featureService", "entities", "fillDefaults", "fullFeatureNames"]);
const PUSH_FIELDS = new Set(["featureView", "rows"]);

/** Quiver's own API: /v1/lookup, /v1/push, /v1/registry. Handlers read the body, call the serving layer, encode. */
export function mountV1Routes(add: AddRoute, deps: HttpDeps, metrics: RouteMetrics): void {
  const { limits, serving } = deps;
  const answers = new NativeAnswerEncoder();

  add("POST", "/v1/lookup",
    instrument(
      metrics,
      "/v1/lookup",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, true)).value);
        rejectUnknownFields(body, LOOKUP_FIELDS);
        const plan = serving.planLookup(body, QUIVER_LOOKUP);
        const result = await serving.lookup(plan, { deadline: lookupDeadline(req, limits.lookupTimeoutMs) });
        const asMsgpack = wantsMsgpack(req.headers.get("accept"));
        if (result.stale !== undefined) {
          // Rare (a cache served grace copies): the generic encoder adds per-row `stale` flags, plus the header.
          const answer = nativeBody(result, plan.fullFeatureNames);
          const headers = staleHeaders(result, degradedHeaders(result.degraded));
          return asMsgpack ? msgpack(answer, 200, headers) : json(answer, 200, headers);
        }
        const bytes = asMsgpack ? answers.msgpack(result, plan.fullFeatureNames) : answers.json(result, plan.fullFeatureNames);
        return encodedAnswer(bytes, asMsgpack, degradedHeaders(result.degraded));
      },
      errorResponse,
    ),
  );

  add("POST", "/v1/push",
    instrument(
      metrics,
      "/v1/push",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, true)).value);
        rejectUnknownFields(body, PUSH_FIELDS);
        return json(await serving.push(body, QUIVER_PUSH));
      },
      errorResponse,
    ),
  );

  add("GET", "/v1/registry",
    instrument(
      metrics,
      "/v1/registry",
      () => {
        const r = deps.registry.current;
        return json({ project: r.project, digest: r.digest, loadedAt: new Date(r.loadedAt).toISOString(), ...r.definition });
      },
      errorResponse,
    ),
  );
}
