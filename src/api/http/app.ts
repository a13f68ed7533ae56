import { Hono } from "hono";
import { QuiverError } from "../../errors/index.ts";
import type { HttpDeps } from "./deps.ts";
import { mountFeastRoutes } from "./feast-routes.ts";
import { mountOpsRoutes } from "./ops-routes.ts";
import { errorResponse } from "./responses.ts";
import { routeMetrics } from "./route.ts";
import { mountV1Routes } from "./v1-routes.ts";

/** The HTTP edge: Quiver's API, Feast's routes and ops, on one Hono app. */
export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();
  const metrics = routeMetrics(deps.metrics);
  mountV1Routes(app, deps, metrics);
  mountFeastRoutes(app, deps, metrics);
  mountOpsRoutes(app, deps, metrics);
  app.notFound((c) => errorResponse(new QuiverError("not_found", 404, `no route ${c.req.method} ${c.req.path}`, { path: "(url)" })));
  app.onError((e) => errorResponse(e));
  return app;
}
