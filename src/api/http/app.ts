import { Hono, type MiddlewareHandler } from "hono";
import { methodNotAllowed, notFound, unavailable } from "../../errors/index.ts";
import { bearerGuard } from "./bearer-guard.ts";
import type { HttpDeps } from "./deps.ts";
import { mountFeastRoutes } from "./feast-routes.ts";
import { mountMatchRoutes } from "./match-routes.ts";
import { mountOpsRoutes } from "./ops-routes.ts";
import { refusalReason } from "../../resilience/index.ts";
import { errorResponse, prebuiltError } from "./responses.ts";
import { type BodyReading, discardBody } from "./body.ts";
import { BodyBudget } from "./body-budget.ts";
import { type AddRoute, type Handler, type OnError, routeMetrics, type Serve, serveRoute } from "./route.ts";
import { mountV1Routes } from "./v1-routes.ts";
import { OverdueWatch, workBounds } from "../work-bounds.ts";
import { deadlineAfter, lookupBudget } from "./deadline.ts";

/** Routes served by Bun's native router as well as Hono: the lookup hot paths. */
const HOT_PATHS = new Set(["/v1/lookup", "/get-online-features"]);

/**
 * Routes behind admission control; health, metrics and admin routes are never shed. Matches too, as gRPC's Match
 * is: a search is the heaviest request a pod serves, and outside admission a flood of them took the CPU the
 * admitted lookups were promised.
 */
const SHEDDABLE = new Set(["/v1/lookup", "/v1/push", "/get-online-features", "/push", "/write-to-online-store", "/v1/match"]);

/** Routes whose work is given up at its bound (../work-bounds.ts): every sheddable one. Lookups are bounded by their budget. */
const BOUNDED = SHEDDABLE;
const LOOKUPS = new Set(["/v1/lookup", "/get-online-features"]);

/** Routes that write: with an admin token configured they need it, as gRPC's write methods do. */
const WRITES = new Set(["/v1/push", "/push", "/write-to-online-store"]);

/** What a shed request is told, by why admission refused it. */
const SHED_MESSAGE = {
  concurrency_limit: "the server is at its concurrency limit; retry shortly",
  cpu_overload: "the server is overloaded (requests are waiting for its CPU); retry shortly",
} as const;

/** Bun.serve's `routes` shape: path → method → handler. */
export type NativeRoutes = Record<string, Partial<Record<"GET" | "POST", Serve>>>;

export interface HttpEdge {
  /** Every route, with JSON 404s; `app.request()` in tests, `fetch` fallback in Bun.serve. */
  readonly app: Hono;
  /**
   * The hot routes for `Bun.serve({ routes })`: the same handlers, minus
   * Hono's per-request context, which is a measurable share of a
   * microsecond-scale lookup.
   */
  readonly nativeRoutes: NativeRoutes;
}

/** The HTTP edge: Quiver's API, Feast's routes and ops. */
export function createHttpEdge(deps: HttpDeps): HttpEdge {
  const app = new Hono();
  // Hono answers HEAD with the GET's headers and no body, and Bun then sent `content-length: 0`: RFC 9110 lets a
  // HEAD answer carry only the GET's length. The body is measured here and its length kept (GET routes only).
  const headLength: MiddlewareHandler = async (c, next) => {
    await next();
    if (c.req.raw.method !== "HEAD" || c.res.body === null || c.res.headers.has("content-length")) return;
    const bytes = (await c.res.clone().arrayBuffer()).byteLength;
    const headers = new Headers(c.res.headers);
    headers.set("content-length", String(bytes));
    c.res = new Response(null, { status: c.res.status, headers });
  };
  const nativeRoutes: NativeRoutes = {};
  const metrics = routeMetrics(deps.metrics);
  const methods = new Map<string, string[]>();
  /** Each path's error shape (Feast's on Feast's routes), for its 405. */
  const errorShapes = new Map<string, OnError>();
  const shedding = (path: string, reason: keyof typeof SHED_MESSAGE, feast: boolean) => ({
    record: deps.sheds.recorder(path, reason),
    answer: prebuiltError(unavailable(SHED_MESSAGE[reason], undefined, "overloaded"), feast),
  });
  const shedAnswer = (path: string): ((refusal: number) => Response) => {
    const feast = !path.startsWith("/v1/");
    // Kind `unavailable`: HTTP 503 + Retry-After as the contract says; the gRPC edge uses the Admission interface and answers RESOURCE_EXHAUSTED.
    // Built once: under CPU overload most requests get this answer, and each must cost a small share of a lookup.
    const answers = {
      concurrency_limit: shedding(path, "concurrency_limit", feast),
      cpu_overload: shedding(path, "cpu_overload", feast),
    };
    return (refusal) => {
      const a = answers[refusalReason(refusal)];
      a.record();
      return a.answer();
    };
  };
  const writeGuard = bearerGuard(deps.adminToken, "writes");
  const { graceMs, maxMs } = workBounds(deps.limits.overdueGraceMs, deps.limits.maxWorkMs);
  // Every request's bound in one watch: one timer for the edge, not one per request that waits on storage.
  const watch = new OverdueWatch(deps.timers);
  const defaultBudgetMs = deps.limits.lookupTimeoutMs;
  // Read only for a handler that answered with a promise: a lookup's header is valid by then (its handler read it).
  const lookupBound = { watch, at: (req: Request) => deadlineAfter(req, lookupBudget(req, defaultBudgetMs)) + graceMs };
  const workBound = { watch, at: () => performance.now() + maxMs };
  // One budget for the bytes of large bodies being read at once, every route's (body-budget.ts).
  const bodyBudget = new BodyBudget(deps.limits.bodyBytesInFlight ?? Math.max(256 << 20, 2 * deps.limits.maxBodyBytes));
  deps.metrics.gauge("quiver_http_body_bytes_in_flight", "Bytes of large (over 64 KiB) and chunked request bodies reserved while being read (body-budget.ts); at the budget new ones are answered 503 bodies_in_flight. Should fall back to 0 when idle.", () => [
    { value: bodyBudget.inUse },
  ]);
  const add: AddRoute = (method: "GET" | "POST", path: string, inner: Handler, onError?: OnError, reading?: BodyReading) => {
    const body = reading === undefined ? undefined : { ...reading, budget: bodyBudget };
    if ((SHEDDABLE.has(path) || WRITES.has(path)) && onError === undefined) throw new Error(`${method} ${path}: a sheddable or write route needs its error shape`);
    const gate = SHEDDABLE.has(path) ? { admission: deps.admission, shed: shedAnswer(path) } : undefined;
    if (body !== undefined && onError === undefined) throw new Error(`${method} ${path}: a route that reads a body needs its error shape`);
    const guard = WRITES.has(path) ? writeGuard : undefined;
    // Answers are batched on the lookup routes only: a pipelining client (allowed for GETs) got 4 answers of
    // /v1/registry or /readyz and then a closed connection.
    const bound = BOUNDED.has(path) ? (LOOKUPS.has(path) ? lookupBound : workBound) : undefined;
    const options = { ...(HOT_PATHS.has(path) ? { release: deps.release } : {}), ...(gate ? { gate } : {}), ...(body ? { body } : {}), ...(guard ? { guard } : {}), ...(bound ? { bound } : {}) };
    const handler = onError === undefined ? (req: Request) => inner(req, undefined) : serveRoute(metrics, path, inner, onError, options);
    if (method === "GET") app.use(path, headLength);
    app.on(method, path, (c) => handler(c.req.raw));
    methods.set(path, [...(methods.get(path) ?? []), method]);
    if (onError !== undefined && !errorShapes.has(path)) errorShapes.set(path, onError);
    if (HOT_PATHS.has(path)) nativeRoutes[path] = { ...nativeRoutes[path], [method]: handler };
  };
  mountV1Routes(add, deps);
  mountMatchRoutes(add, deps);
  mountFeastRoutes(add, deps);
  mountOpsRoutes(add, deps);
  for (const [path, allowed] of methods) {
    app.all(path, (c): Response | Promise<Response> => {
      const shape = errorShapes.get(path) ?? errorResponse;
      const answer = (): Response => {
        const res = shape(methodNotAllowed(`${c.req.method} ${path}: use ${allowed.join(" or ")}`, "(method)"));
        res.headers.set("allow", allowed.join(", "));
        return res;
      };
      // Read and drop a body first (bounded), so the client reads the 405 rather than a reset connection.
      return c.req.raw.body === null ? answer() : discardBody(c.req.raw, deps.limits.maxBodyBytes).then(answer);
    });
  }
  app.notFound((c) => errorResponse(notFound("not_found", `no route ${c.req.method} ${c.req.path}`, "(url)")));
  app.onError((e) => errorResponse(e));
  return { app, nativeRoutes };
}
