import { failedPrecondition, invalid, notFound, unavailable, unknownName } from "../../errors/index.ts";
import type { InvalidationScope } from "../../feed/change-feed.ts";
import { ANOMALY_KINDS, type AnomalyKind } from "../../ops/anomaly-buffer.ts";
import { describeValue } from "../../registry/index.ts";
import { lateBody } from "../../runtime/index.ts";
import { parseEventTime } from "../../serving/index.ts";
import { bearerGuard } from "./bearer-guard.ts";
import { asObject, readBody, rejectUnknownFields } from "./body.ts";
import type { HttpDeps } from "./deps.ts";
import { errorResponse, json } from "./responses.ts";
import type { AddRoute } from "./route.ts";

const utf8 = new TextEncoder();

/** Liveness, readiness, metrics and the admin reload. */
export function mountOpsRoutes(add: AddRoute, deps: HttpDeps): void {
  const requireAdmin = bearerGuard(deps.adminToken, "admin routes") ?? (() => {});
  const topologyOf = () => {
    if (!deps.topology) throw failedPrecondition("no_topology", "this server runs on the embedded store; start it with --topology to use shard admin routes", "(url)");
    return deps.topology;
  };
  add("GET", "/healthz", () => json({ status: "ok" }));

  add("GET", "/readyz",
    async () => {
      const registry = deps.registry.current;
      const [store, extra] = await Promise.all([deps.store.health(), deps.readinessDetail ? deps.readinessDetail() : Promise.resolve({})]);
      // Ready unless shutting down. Readiness is about this pod, not its storage: every pod shares the shards, so failing
      // readiness on a shard outage would turn it into a full outage. A degraded store shows in
      // `store` and the health score; lookups answer defaults flagged UNAVAILABLE meanwhile. The one exception is
      // this pod's own view of the store: a ring that is not where the keys are (another server moved them).
      const unready = deps.unready?.();
      const ready = !deps.draining() && unready === undefined;
      const health = deps.health.report;
      return json(
        {
          ready,
          ...(unready !== undefined ? { unready } : {}),
          registry: { project: registry.project, digest: registry.digest, featureViews: registry.views.size },
          health: { score: health.score, inFlight: health.inFlight, p99Ms: health.p99Ms, factors: health.factors, admission: deps.admission.snapshot() },
          store,
          ...extra,
        },
        ready ? 200 : 503,
      );
    },
    errorResponse,
  );

  const metricsHeaders = { "content-type": deps.metrics.contentType };
  // Rendered asynchronously, so written after the request's callback: ~60 KB would leave uncorked (late-body.ts).
  add("GET", "/metrics", async () => new Response(lateBody(utf8.encode(await deps.metrics.render())), { headers: metricsHeaders }));

  add("POST", "/admin/registry/reload",
    async (req) => {
      requireAdmin(req);
      const next = await deps.reloadRegistry();
      return json({ reloaded: true, digest: next.digest, featureViews: next.views.size, featureServices: next.services.size, pushSources: next.pushSources.size });
    },
    errorResponse,
  );

  add("GET", "/admin/anomalies",
    (req) => {
      requireAdmin(req);
      const params = new URL(req.url).searchParams;
      for (const name of params.keys()) {
        if (!["limit", "kind", "since"].includes(name)) throw invalid("invalid_request", `(query).${name}`, "unknown parameter (expected limit, kind, since)");
        if (params.getAll(name).length > 1) throw invalid("invalid_request", `(query).${name}`, "given more than once");
      }
      const limitRaw = params.get("limit");
      // Decimal digits only: Number() took " 5", "1e2" and "0x10".
      const limit = limitRaw === null ? 100 : /^\d{1,5}$/.test(limitRaw) ? Number(limitRaw) : Number.NaN;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid("invalid_request", "(query).limit", `expected an integer from 1 to 10000, got ${JSON.stringify(limitRaw)}`);
      const kind = params.get("kind");
      if (kind !== null && !ANOMALY_KINDS.includes(kind as AnomalyKind)) throw invalid("invalid_request", "(query).kind", `expected one of ${ANOMALY_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
      const sinceRaw = params.get("since");
      // Epoch ms or an RFC 3339 / ISO date, read as event times are (Date.parse alone takes "-1" for 2001).
      const since = sinceRaw === null ? undefined : parseEventTime(/^\d+$/.test(sinceRaw) ? Number(sinceRaw) : sinceRaw, "(query).since");
      const entries = deps.anomalies.query({ limit, ...(kind !== null ? { kind: kind as AnomalyKind } : {}), ...(since !== undefined ? { since } : {}) });
      return json({
        size: deps.anomalies.length,
        evictions: deps.anomalies.evictions,
        anomalies: entries.map((a) => ({ ...a, firstAt: new Date(a.firstAt).toISOString(), lastAt: new Date(a.lastAt).toISOString() })),
      });
    },
    errorResponse,
  );

  add("POST", "/admin/topology/reload",
    async (req) => {
      requireAdmin(req);
      return json(await topologyOf().reload());
    },
    errorResponse,
  );

  add("GET", "/admin/topology/migration",
    (req) => {
      requireAdmin(req);
      const progress = topologyOf().progress();
      if (progress === undefined) throw notFound("not_found", "no migration has run since start-up", "(url)");
      return json(progress);
    },
    errorResponse,
  );

  add("POST", "/admin/cache/invalidate",
    async (req) => {
      requireAdmin(req);
      const scope = cacheScope(asObject(await readBody(req, 4096, false)), (view) => deps.registry.current.views.has(view));
      if (!deps.cache) return json({ invalidated: scope, caches: "off" });
      try {
        await deps.cache.invalidate(scope);
      } catch (e) {
        throw unavailable(`cache invalidation did not reach L2: ${e instanceof Error ? e.message : String(e)}`, e);
      }
      return json({ invalidated: scope, cache: deps.cache.state() });
    },
    errorResponse,
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
