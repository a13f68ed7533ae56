import type { HistogramHandle, MetricsRegistry } from "../../ops/metrics.ts";
import { toQuiverError } from "../../errors/index.ts";
import { httpStatusOf } from "./error-status.ts";

/** A route handler on the raw request, so Hono and Bun's native router can share it. */
export type Handler = (req: Request) => Response | Promise<Response>;

/** Registers a handler for a method and path (see app.ts). */
export type AddRoute = (method: "GET" | "POST", path: string, handler: Handler) => void;

/**
 * Wraps a handler once at start-up with its metrics and error mapping, so a
 * request pays one timer read and two adds, and every failure leaves through
 * `onError` in the route family's error shape (Quiver's or Feast's).
 */
export function instrument(metrics: RouteMetrics, name: string, handler: Handler, onError: (e: unknown) => Response): Handler {
  const latency = metrics.latency.labels(name);
  const byStatus = new Map<number, { inc(): void }>();
  const count = (status: number) => {
    let h = byStatus.get(status);
    if (!h) {
      h = metrics.requests.labels(name, String(status));
      byStatus.set(status, h);
    }
    h.inc();
  };
  return async (req) => {
    const start = performance.now();
    let res: Response;
    try {
      res = await handler(req);
    } catch (e) {
      const q = toQuiverError(e);
      if (httpStatusOf(q) >= 500) metrics.errors.labels(name, q.code).inc();
      res = onError(q);
    }
    latency.observe((performance.now() - start) / 1000);
    count(res.status);
    return res;
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
