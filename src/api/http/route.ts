import type { HistogramHandle, MetricsRegistry } from "../../ops/metrics.ts";
import type { Admission } from "../../resilience/admission.ts";
import { toQuiverError } from "../../errors/index.ts";
import { type AnswerRelease, releaseAtOnce } from "../../runtime/index.ts";
import { noteQueuedSince } from "./deadline.ts";
import { httpStatusOf } from "./error-status.ts";
import { answerMarksOf, DEGRADED, LEAVES_NOW } from "./responses.ts";

/** A route handler on the raw request, so Hono and Bun's native router can share it. */
export type Handler = (req: Request) => Response | Promise<Response>;

/** Maps a failure to the route family's error answer (Quiver's or Feast's shape). */
export type OnError = (e: unknown) => Response;

/**
 * Registers a handler for a method and path (see app.ts). With `onError` the
 * route is served through `serveRoute` (metrics, error mapping and, for
 * sheddable routes, admission); without it the handler runs bare (liveness,
 * metrics scrape).
 */
export type AddRoute = (method: "GET" | "POST", path: string, handler: Handler, onError?: OnError) => void;

/** Admission control in front of a route, and its answer for a refused request. */
export interface Gate {
  readonly admission: Admission;
  /** 503 + Retry-After in the route family's shape, for admission's refusal code; the body is not read. */
  readonly shed: (refusal: number) => Response;
}

/**
 * Wraps a handler once at start-up with admission (when `gate` is given),
 * metrics and error mapping, as one layer with no `async` frame: a handler
 * that answers synchronously costs no promise here, one that answers later
 * costs one `then`. Every failure leaves through `onError`; admission hears
 * how the request ended (a 5xx or a degraded answer counts against it).
 * Finished answers go through `release` (runtime/turn-batch.ts), unless
 * they must leave from their request's callback; refusals leave at once.
 */
export function serveRoute(
  metrics: RouteMetrics,
  name: string,
  handler: Handler,
  onError: OnError,
  gate?: Gate,
  release: AnswerRelease<Response> = releaseAtOnce,
): Handler {
  const latency = metrics.latency.labels(name);
  const errors = metrics.errors;
  const byStatus = new Map<number, { inc(): void }>();
  const count = (status: number) => {
    let h = byStatus.get(status);
    if (!h) {
      h = metrics.requests.labels(name, String(status));
      byStatus.set(status, h);
    }
    h.inc();
  };
  const admission = gate?.admission;
  // Admission hears the end before the answer is held: a held answer is finished work, not a request in flight.
  const finish = (start: number, admittedAt: number, res: Response): Response | Promise<Response> => {
    latency.observe((performance.now() - start) / 1000);
    count(res.status);
    const marks = answerMarksOf(res);
    if (admittedAt >= 0) admission!.done(admittedAt, res.status >= 500 || (marks & DEGRADED) !== 0);
    return (marks & LEAVES_NOW) !== 0 ? res : release.hold(res);
  };
  const fail = (e: unknown): Response => {
    const q = toQuiverError(e);
    if (httpStatusOf(q) >= 500) errors.labels(name, q.code).inc();
    return onError(q);
  };
  const run = (req: Request, admittedAt: number): Response | Promise<Response> => {
    const start = performance.now();
    let out: Response | Promise<Response>;
    try {
      out = handler(req);
    } catch (e) {
      return finish(start, admittedAt, fail(e));
    }
    if (out instanceof Response) return finish(start, admittedAt, out);
    return out.then(
      (res) => finish(start, admittedAt, res),
      (e: unknown) => finish(start, admittedAt, fail(e)),
    );
  };
  if (gate === undefined) return (req) => run(req, -1);
  const shed = gate.shed;
  return (req) => {
    const t = gate.admission.admit();
    if (typeof t === "number") return t < 0 ? shed(t) : run(req, t);
    // Queued: the client's budget runs while it waits (deadline.ts).
    noteQueuedSince(req, performance.now());
    return t.then((at) => (at < 0 ? shed(at) : run(req, at)));
  };
}

export interface RouteMetrics {
  readonly requests: { labels(route: string, status: string): { inc(): void } };
  readonly errors: { labels(route: string, code: string): { inc(): void } };
  readonly latency: { labels(route: string): HistogramHandle };
}

export function routeMetrics(registry: MetricsRegistry): RouteMetrics {
  return {
    requests: registry.counter("quiver_http_requests_total", "HTTP requests by route and status.", ["route", "status"]),
    errors: registry.counter("quiver_http_server_errors_total", "HTTP 5xx answers by route and error code.", ["route", "code"]),
    latency: registry.histogram("quiver_http_request_duration_seconds", "HTTP request latency by route.", ["route"]),
  };
}
