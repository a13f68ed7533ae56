import type { NativeRoutes } from "./app.ts";
import type { Serve } from "./route.ts";

/**
 * The edge's handlers as a draining server serves them (SIGTERM with
 * --shutdown-delay): every answer carries `Connection: close`, so a client
 * holding a keep-alive connection to this pod closes it after that answer
 * and its next request opens a new one, which the balancer sends to a ready
 * pod. Readiness alone moves only new connections: a Service's established
 * connections stay on the pod they were opened to, and when the delay ended
 * and the listener closed, each such client's next request met a reset
 * (16 of 16 keep-alive push clients got ECONNRESET at the end of a 1 s delay,
 * none of them answered). Installed with `server.reload` when the drain
 * starts, so serving pays nothing for it before.
 */
export function closingConnections(
  routes: NativeRoutes,
  fetch: (req: Request, ...rest: never[]) => Response | Promise<Response>,
): { routes: NativeRoutes; fetch: (req: Request, ...rest: never[]) => Response | Promise<Response> } {
  const closed: NativeRoutes = {};
  for (const [path, methods] of Object.entries(routes)) {
    const wrapped: Partial<Record<"GET" | "POST", Serve>> = {};
    for (const [method, serve] of Object.entries(methods) as ["GET" | "POST", Serve][]) wrapped[method] = (req) => closingAnswer(serve(req));
    closed[path] = wrapped;
  }
  return { routes: closed, fetch: (req, ...rest) => closingAnswer(fetch(req, ...rest)) };
}

function closingAnswer(out: Response | Promise<Response>): Response | Promise<Response> {
  return out instanceof Response ? withClose(out) : out.then(withClose);
}

function withClose(res: Response): Response {
  try {
    res.headers.set("connection", "close");
    return res;
  } catch {
    // Immutable headers (a fetched Response): the same answer with a copy of them.
    const headers = new Headers(res.headers);
    headers.set("connection", "close");
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}
