import { invalid } from "../../errors/index.ts";
import { describeValue } from "../../registry/index.ts";
import { parseEntities, resolveFeatures } from "../../serving/index.ts";
import { asObject, readBody, rejectUnknownFields, wantsMsgpack } from "./body.ts";
import type { HttpDeps } from "./deps.ts";
import { nativeBody } from "./encode-result.ts";
import { errorResponse, json, msgpack } from "./responses.ts";
import { type AddRoute, instrument, type RouteMetrics } from "./route.ts";
import { pushColumnsOfRows } from "./push-columns.ts";

const LOOKUP_FIELDS = new Set(["features", "featureService", "entities", "fillDefaults", "fullFeatureNames"]);
const PUSH_FIELDS = new Set(["featureView", "rows"]);

function optionalBool(body: Record<string, unknown>, field: string, dflt: boolean): boolean {
  const v = body[field];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw invalid("invalid_request", field, `expected true or false, got ${describeValue(v)}`);
  return v;
}

/** Quiver's own API: /v1/lookup, /v1/push, /v1/registry. */
export function mountV1Routes(add: AddRoute, deps: HttpDeps, metrics: RouteMetrics): void {
  const { limits } = deps;

  add("POST", "/v1/lookup",
    instrument(
      metrics,
      "/v1/lookup",
      async (req) => {
        const { value } = await readBody(req, limits.maxBodyBytes, true);
        const body = asObject(value);
        rejectUnknownFields(body, LOOKUP_FIELDS);
        const registry = deps.registry.current;
        const refs = resolveFeatures(registry, body.features, body.featureService, { features: "features", service: "featureService" });
        if (body.entities === undefined) throw invalid("invalid_request", "entities", "is required");
        const entities = parseEntities(body.entities, "entities", limits.maxRows);
        const fillDefaults = optionalBool(body, "fillDefaults", true);
        const full = optionalBool(body, "fullFeatureNames", false);
        const result = await deps.lookup.lookup({ refs, entities, fillDefaults });
        const answer = nativeBody(result, full);
        return wantsMsgpack(req.headers.get("accept")) ? msgpack(answer) : json(answer);
      },
      errorResponse,
    ),
  );

  add("POST", "/v1/push",
    instrument(
      metrics,
      "/v1/push",
      async (req) => {
        const { value } = await readBody(req, limits.maxBodyBytes, true);
        const body = asObject(value);
        rejectUnknownFields(body, PUSH_FIELDS);
        const viewName = body.featureView;
        if (typeof viewName !== "string") throw invalid("invalid_request", "featureView", `expected a feature view name, got ${describeValue(viewName)}`);
        const view = deps.registry.current.views.get(viewName);
        if (!view) throw invalid("unknown_feature_view", "featureView", `unknown feature view "${viewName}"`);
        if (!Array.isArray(body.rows)) throw invalid("invalid_request", "rows", `expected a list of rows, got ${describeValue(body.rows)}`);
        if (body.rows.length === 0) throw invalid("invalid_request", "rows", "must hold at least one row");
        const input = parseEntities(body.rows, "rows", limits.maxRows);
        const entries = deps.push.prepare(view, input, pushColumnsOfRows(body.rows as Record<string, unknown>[], "rows"));
        return json(await deps.push.write(entries));
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
