import { failedPrecondition, invalid, notFound, unauthenticated, unavailable, unknownName } from "../../errors/index.ts";
import type { InvalidationScope } from "../../feed/change-feed.ts";
import { describeValue } from "../../registry/index.ts";
import { asObject, readBody, rejectUnknownFields } from "./body.ts";
import type { HttpDeps } from "./deps.ts";
import { errorResponse, json } from "./responses.ts";
import { type AddRoute, instrument, type RouteMetrics } from "./route.ts";

/** Liveness, readiness, metrics and the admin reload. */
export function mountOpsRoutes(add: AddRoute, deps: HttpDeps, metrics: RouteMetrics): void {
  const requireAdmin = (req: Request) => {
    if (deps.adminToken !== undefined && req.headers.get("authorization") !== `Bearer ${deps.adminToken}`) {
      throw unauthenticated("admin routes need Authorization: Bearer <QUIVER_ADMIN_TOKEN>", "(headers).authorization");
    }
  };
  const topologyOf = () => {
    if (!deps.topology) throw failedPrecondition("no_topology", "this server runs on the embedded store; start it with --topology to use shard admin routes", "(url)");
    return deps.topology;
  };
  add("GET", "/healthz", () => json({ status: "ok" }));

  add("GET", "/readyz",
    instrument(
      metrics,
      "/readyz",
      async () => {
        const registry = deps.registry.current;
        const [store, extra] = await Promise.all([deps.store.health(), deps.readinessDetail ? deps.readinessDetail() : Promise.resolve({})]);
        // Lost caches or feed degrade the pod (slower, L1 cleared on reconnect); the origin still answers, so it stays ready.
        const ready = store.ok;
        return json(
          { ready, registry: { project: registry.project, digest: registry.digest, featureViews: registry.views.size }, store, ...extra },
          ready ? 200 : 503,
        );
      },
      errorResponse,
    ),
  );

  const metricsHeaders = { "content-type": deps.metrics.contentType };
  add("GET", "/metrics", async () => new Response(await deps.metrics.render(), { headers: metricsHeaders }));

  add("POST", "/admin/registry/reload",
    instrument(
      metrics,
      "/admin/registry/reload",
      async (req) => {
        requireAdmin(req);
        const next = await deps.reloadRegistry();
        return json({ reloaded: true, digest: next.digest, featureViews: next.views.size, featureServices: next.services.size });
      },
      errorResponse,
    ),
  );

  add(
    "POST",
    "/admin/topology/reload",
    instrument(
      metrics,
      "/admin/topology/reload",
      async (req) => {
        requireAdmin(req);
        return json(await topologyOf().reload());
      },
      errorResponse,
    ),
  );

  add(
    "GET",
    "/admin/topology/migration",
    instrument(
      metrics,
      "/admin/topology/migration",
      (req) => {
        requireAdmin(req);
        const progress = topologyOf().progress();
        if (progress === undefined) throw notFound("not_found", "no migration has run since start-up", "(url)");
        return json(progress);
      },
      errorResponse,
    ),
  );

  add(
    "POST",
    "/admin/cache/invalidate",
    instrument(
      metrics,
      "/admin/cache/invalidate",
      async (req) => {
        requireAdmin(req);
        const scope = cacheScope(asObject((await readBody(req, 4096, false)).value), (view) => deps.registry.current.views.has(view));
        if (!deps.cache) return json({ invalidated: scope, caches: "off" });
        try {
          await deps.cache.invalidate(scope);
        } catch (e) {
          throw unavailable(`cache invalidation did not reach L2: ${e instanceof Error ? e.message : String(e)}`, e);
        }
        return json({ invalidated: scope, cache: deps.cache.state() });
      },
      errorResponse,
    ),
  );
}

/** `{"view": "<name>"}` or `{"all": true}`; 400 naming the field otherwise. */
function cacheScope(body: Record<string, unknown>, known: (view: string) => boolean): InvalidationScope {
  rejectUnknownFields(body, CACHE_FIELDS);
  if (body.all !== undefined) {
    if (body.all !== true) throw invalid("invalid_request", "all", `expected true, got ${describeValue(body.all)}`);
    if (body.view !== undefined) throw invalid("invalid_request", "view", "give either view or all, not both");
    return { all: true };
  }
  const view = body.view;
  if (typeof view !== "string") throw invalid("invalid_request", "view", `expected a feature view name (or "all": true), got ${describeValue(view)}`);
  if (!known(view)) throw unknownName("unknown_feature_view", "view", `unknown feature view "${view}"`);
  return { view };
}

const CACHE_FIELDS = new Set(["view", "all"]);
