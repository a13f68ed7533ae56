import { FEAST_LOOKUP, FEAST_PUSH, FEAST_WRITE } from "../../serving/index.ts";
import { asObject, readBody } from "./body.ts";
import { degradedHeaders, lookupDeadline } from "./deadline.ts";
import type { HttpDeps } from "./deps.ts";
import { staleHeaders, unavailableCount } from "./encode-result.ts";
import { FeastAnswerEncoder } from "./feast-answer.ts";
import { encodedAnswer, feastErrorResponse, json } from "./responses.ts";
import { type AddRoute, instrument, type RouteMetrics } from "./route.ts";

/**
 * Feast feature-server routes, wire-compatible with ../shared/reference/
 * feast-serving-api.md, so model code written for Feast works unchanged.
 * Like Feast, missing values are null (no defaults) unless the store is down.
 */
export function mountFeastRoutes(add: AddRoute, deps: HttpDeps, metrics: RouteMetrics): void {
  const { limits, serving } = deps;
  const answers = new FeastAnswerEncoder();

  add("POST", "/get-online-features",
    instrument(
      metrics,
      "/get-online-features",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, false)).value);
        const plan = serving.planLookup(body, FEAST_LOOKUP);
        const result = await serving.lookup(plan, { deadline: lookupDeadline(req, limits.lookupTimeoutMs) });
        const missing = unavailableCount(result);
        const bytes = answers.json(result, plan.entities, plan.fullFeatureNames);
        return encodedAnswer(bytes, false, staleHeaders(result, degradedHeaders(result.degraded, missing > 0 ? { "x-quiver-unavailable": String(missing) } : undefined)));
      },
      feastErrorResponse,
    ),
  );

  add("POST", "/push",
    instrument(
      metrics,
      "/push",
      async (req) => json(await serving.push(asObject((await readBody(req, limits.maxBodyBytes, false)).value), FEAST_PUSH)),
      feastErrorResponse,
    ),
  );

  add("POST", "/write-to-online-store",
    instrument(
      metrics,
      "/write-to-online-store",
      async (req) => json(await serving.push(asObject((await readBody(req, limits.maxBodyBytes, false)).value), FEAST_WRITE)),
      feastErrorResponse,
    ),
  );

  add("GET", "/health",
    instrument(
      metrics,
      "/health",
      async () => {
        const health = await deps.store.health();
        return new Response(health.ok ? "" : "storage unavailable", { status: health.ok ? 200 : 503 });
      },
      feastErrorResponse,
    ),
  );
}
