import { invalid } from "../../errors/index.ts";
import { describeValue } from "../../registry/index.ts";
import { ColumnEntities, parseEntities, resolveFeatures } from "../../serving/index.ts";
import { asObject, readBody } from "./body.ts";
import type { HttpDeps } from "./deps.ts";
import { feastBody, unavailableCount } from "./encode-result.ts";
import { pushColumnsOfFrame } from "./push-columns.ts";
import { feastErrorResponse, json } from "./responses.ts";
import { type AddRoute, instrument, type RouteMetrics } from "./route.ts";

/**
 * Feast feature-server routes, wire-compatible with ../shared/reference/
 * feast-serving-api.md, so model code written for Feast works unchanged.
 * Like Feast, missing values are null (no defaults) unless the store is down.
 */
export function mountFeastRoutes(add: AddRoute, deps: HttpDeps, metrics: RouteMetrics): void {
  const { limits } = deps;

  add("POST", "/get-online-features",
    instrument(
      metrics,
      "/get-online-features",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, false)).value);
        const registry = deps.registry.current;
        const refs = resolveFeatures(registry, body.features, body.feature_service, { features: "features", service: "feature_service" });
        if (body.entities === undefined) throw invalid("invalid_request", "entities", "is required");
        const entities = parseEntities(body.entities, "entities", limits.maxRows);
        const full = body.full_feature_names === true;
        const result = await deps.lookup.lookup({ refs, entities, fillDefaults: false });
        const missing = unavailableCount(result);
        return json(feastBody(result, entities, full), 200, missing > 0 ? { "x-quiver-unavailable": String(missing) } : undefined);
      },
      feastErrorResponse,
    ),
  );

  /** Shared by /push and /write-to-online-store: a columnar `df` for one view. */
  const writeFrame = async (viewName: unknown, viewField: string, df: unknown) => {
    if (typeof viewName !== "string") throw invalid("invalid_request", viewField, `expected a name, got ${describeValue(viewName)}`);
    const registry = deps.registry.current;
    // A push source is addressed by its view's name (or `<view>_push_source`, Feast's usual naming).
    const view = registry.views.get(viewName) ?? registry.views.get(viewName.replace(/_push_source$/, ""));
    if (!view) throw invalid("unknown_feature_view", viewField, `unknown feature view or push source "${viewName}"`);
    if (df === null || typeof df !== "object" || Array.isArray(df)) throw invalid("invalid_request", "df", `expected a columnar map of column to values, got ${describeValue(df)}`);
    const input = parseEntities(df, "df", limits.maxRows);
    if (!(input instanceof ColumnEntities) || input.rowCount === 0) throw invalid("invalid_request", "df", "must hold at least one row");
    const entries = deps.push.prepare(view, input, pushColumnsOfFrame(df as Record<string, unknown>, "df"));
    return deps.push.write(entries);
  };

  add("POST", "/push",
    instrument(
      metrics,
      "/push",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, false)).value);
        const to = body.to ?? "online";
        if (to === "offline") throw invalid("invalid_request", "to", 'Quiver is an online store; use "online" (or "online_and_offline", of which Quiver performs the online part)');
        if (to !== "online" && to !== "online_and_offline") throw invalid("invalid_request", "to", `expected "online", "offline" or "online_and_offline", got ${describeValue(to)}`);
        const outcome = await writeFrame(body.push_source_name, "push_source_name", body.df);
        return json(outcome);
      },
      feastErrorResponse,
    ),
  );

  add("POST", "/write-to-online-store",
    instrument(
      metrics,
      "/write-to-online-store",
      async (req) => {
        const body = asObject((await readBody(req, limits.maxBodyBytes, false)).value);
        return json(await writeFrame(body.feature_view_name, "feature_view_name", body.df));
      },
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
