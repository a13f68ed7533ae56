import type { HistogramHandle, MetricsRegistry } from "../../ops/metrics.ts";
import { type Admission, REFUSED_CPU } from "../../resilience/admission.ts";
import { toQuiverError } from "../../errors/index.ts";
import { type AnswerRelease, releaseAtOnce } from "../../runtime/index.ts";
import { type OverdueWatch, overdue, type Watched } from "../work-bounds.ts";
import { type BodyReading, discardBody, readBodyThen } from "./body.ts";
import { noteQueuedSince } from "./deadline.ts";
import { httpStatusOf } from "./error-status.ts";
import { answerMarksOf, DEGRADED, LEAVES_NOW } from "./responses.ts";

/**
 * A route handler on the raw request, so Hono and Bun's native router can
 * share it. `body` is the parsed body of a route registered with a
 * `BodyReading` (read before the handler runs), undefined otherwise.
 */
export type Handler = (req: Request, body: unknown) => Response | Promise<Response>;

/** A request served end to end (what `serveRoute` gives and Bun's native router calls). */
export type Serve = (req: Request) => Response | Promise<Response>;

/** Maps a failure to the route family's error answer (Quiver's or Feast's shape). */
export type OnError = (e: unknown) => Response;

/**
 * Registers a handler for a method and path (see app.ts). With `onError` the
 * route is served through `serveRoute` (metrics, error mapping and, for
 * sheddable routes, admission); without it the handler runs bare (liveness,
 * metrics scrape).
 */
export interface AddRoute {
  (method: "GET" | "POST", path: string, handler: Serve, onError?: OnError): void;
  /** A POST route whose body is read (as `body` says) before its handler runs and before it takes a concurrency slot. */
  (method: "POST", path: string, handler: Handler, onError: OnError, body: BodyReading): void;
}

/** Admission control in front of a route, and its answer for a refused request. */
export interface Gate {
  readonly admission: Admission;
  /** 503 + Retry-After in the route family's shape, for admission's refusal code; the body is not read. */
  readonly shed: (refusal: number) => Response;
}

/**
 * When a request's work that has not ended is given up (../work-bounds.ts):
 * its slot goes back and its client gets the route's 503 `overdue`.
 */
export interface RouteBound {
  /** The request's bound (performance.now() ms), read once its handler answered with a promise. */
  readonly at: (req: Request) => number;
  /** Where the bounds are kept: the edge's one watch. */
  readonly watch: OverdueWatch;
}

/** What a route adds around its handler (serveRoute). */
export interface RouteOptions {
  /** Admission control; without it the route is never shed. */
  readonly gate?: Gate;
  /** When a finished answer leaves (default: at once). */
  readonly release?: AnswerRelease<Response>;
  /** The body to read and parse before the handler runs (and before a slot is taken). */
  readonly body?: BodyReading;
  /** Runs first, on the headers alone; throws (a QuiverError) to refuse, e.g. a write without its token. */
  readonly guard?: (req: Request) => void;
  /** Work still running at its bound is given up; without it a handler's promise is waited on for as long as it takes. */
  readonly bound?: RouteBound;
}

/**
 * Wraps a handler once at start-up with admission (when `gate` is given),
 * metrics and error mapping, as one layer with no `async` frame: a handler
 * that answers synchronously costs no promise here, one that answers later
 * costs one `then`. Every failure leaves through `onError`; admission hears
 * how the request ended (a 5xx or a degraded answer counts against it).
 * Finished answers go through `release` (runtime/turn-batch.ts), unless
 * they must leave from their request's callback; refusals leave at once.
 * With `body`, the route's body is read and parsed here, between the arrival
 * screen and the concurrency slot, and handed to the handler: a request
 * holds a slot only once its body has arrived. With `guard`, a request the
 * guard refuses is answered before any of that (its body unread, no slot).
 * With `bound`, a handler's promise still pending at its bound is given up:
 * the slot goes back, the client gets a 503 `overdue` (counted in
 * quiver_http_overdue_work_total{route}), the promise's late end is dropped.
 * Before, one that never settled (storage hung past every timeout) held its
 * slot and its client for good. A handler answering synchronously pays nothing.
 */
export function serveRoute(metrics: RouteMetrics, name: string, handler: Handler, onError: OnError, options: RouteOptions = {}): Serve {
  const { gate, body, guard } = options;
  const release = options.release ?? releaseAtOnce;
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
  /** A handler's answer that is a promise, once it settles: unbounded, or given up at its bound. */
  const later = laterAnswer(finish, fail, options.bound, metrics.overdue, name);
  /** Runs the handler; `start` is when the request arrived (its latency counts from there, body read included). */
  const run = (req: Request, value: unknown, admittedAt: number, start = performance.now()): Response | Promise<Response> => {
    let out: Response | Promise<Response>;
    try {
      out = handler(req, value);
    } catch (e) {
      return finish(start, admittedAt, fail(e));
    }
    if (out instanceof Response) return finish(start, admittedAt, out);
    return later(req, out, start, admittedAt);
  };
  // A body that could not be read or parsed (400, 413, 415) held no slot.
  const unread = (start: number, e: unknown): Response | Promise<Response> => finish(start, -1, fail(e));
  // Refusals count as answers of the route too (status 503, a server error "overloaded"): counted only as sheds,
  // a dashboard on these series showed no errors while most requests were refused.
  const overloaded = gate === undefined ? undefined : errors.labels(name, "overloaded");
  const counted: Gate | undefined =
    gate === undefined
      ? undefined
      : {
          admission: gate.admission,
          shed: (refusal) => {
            const res = gate.shed(refusal);
            count(res.status);
            overloaded!.inc();
            return res;
          },
        };
  const serve = admitted(run, unread, counted, body);
  if (guard === undefined) return serve;
  // Refused on its headers: no body parsed, no slot, no screen (a refusal costs no admission state);
  // what the client is still sending is read and dropped, so it reads the refusal, not a reset.
  return (req) => {
    const start = performance.now();
    try {
      guard(req);
    } catch (e) {
      if (body === undefined || req.body === null) return unread(start, e);
      return discardBody(req, body.limit).then(() => unread(start, e));
    }
    return serve(req);
  };
}

type Finish = (start: number, admittedAt: number, res: Response) => Response | Promise<Response>;

/**
 * A bounded route's answer while its handler's promise is pending (an
 * OverdueWatch entry, carrying what its answer needs: no closure of its own).
 * Given up, it answers the route's 503 `overdue`.
 */
class PendingAnswer implements Watched {
  constructor(
    readonly at: number,
    readonly resolve: (res: Response | Promise<Response>) => void,
    readonly start: number,
    readonly admittedAt: number,
    readonly overdue: (start: number, admittedAt: number) => Response | Promise<Response>,
  ) {}

  giveUp(): void {
    this.resolve(this.overdue(this.start, this.admittedAt));
  }
}

/** How serveRoute answers once a handler's promise settles: chosen once per route, by whether it is bounded. */
function laterAnswer(finish: Finish, fail: (e: unknown) => Response, bound: RouteBound | undefined, overdueMetric: RouteMetrics["overdue"], name: string) {
  if (bound === undefined) {
    return (_req: Request, out: Promise<Response>, start: number, admittedAt: number): Promise<Response> =>
      out.then(
        (res) => finish(start, admittedAt, res),
        (e: unknown) => finish(start, admittedAt, fail(e)),
      );
  }
  const { at, watch } = bound;
  // Resolved at the route's first give-up: routes never overdue export no series.
  let overdueCount: { inc(): void } | undefined;
  const overdueAnswer = (start: number, admittedAt: number): Response | Promise<Response> => {
    overdueCount ??= overdueMetric.labels(name);
    overdueCount.inc();
    return finish(start, admittedAt, fail(overdue()));
  };
  // The answer's resolver, taken from its promise's executor (run at once, inside the constructor): one shared
  // executor, not a closure (and its scope) per request.
  let taken!: (res: Response | Promise<Response>) => void;
  const take = (resolve: (res: Response | Promise<Response>) => void) => {
    taken = resolve;
  };
  // Beyond the unbounded route's `then`: the promise answered (the handler's cannot be settled from here) and a watch entry.
  return (req: Request, out: Promise<Response>, start: number, admittedAt: number): Promise<Response> => {
    const answer = new Promise<Response>(take);
    const pending = watch.add(new PendingAnswer(at(req), taken, start, admittedAt, overdueAnswer));
    out.then(
      (res) => {
        if (watch.ended(pending)) pending.resolve(finish(start, admittedAt, res));
      },
      (e: unknown) => {
        if (watch.ended(pending)) pending.resolve(finish(start, admittedAt, fail(e)));
      },
    );
    return answer;
  };
}

/** A request's way to its handler: admission (when gated) and its body (when it has one), as serveRoute describes. */
function admitted(
  run: (req: Request, value: unknown, admittedAt: number, start?: number) => Response | Promise<Response>,
  unread: (start: number, e: unknown) => Response | Promise<Response>,
  gate: Gate | undefined,
  body: BodyReading | undefined,
): Serve {
  if (gate === undefined) {
    if (body === undefined) return (req) => run(req, undefined, -1);
    return (req) => {
      const start = performance.now();
      try {
        return readBodyThen(req, body, (value) => run(req, value, -1, start)).catch((e: unknown) => unread(start, e));
      } catch (e) {
        return refusedUnread(req, body, () => unread(start, e));
      }
    };
  }
  const shed = gate.shed;
  const slots = gate.admission;
  /** Runs once a slot is free; queued, the client's budget runs while it waits (deadline.ts). */
  const withSlot = (req: Request, value: unknown, t: number | Promise<number>, start?: number): Response | Promise<Response> => {
    if (typeof t === "number") return t < 0 ? shed(t) : run(req, value, t, start);
    noteQueuedSince(req, performance.now());
    return t.then((at) => (at < 0 ? shed(at) : run(req, value, at, start)));
  };
  if (body === undefined) return (req) => withSlot(req, undefined, slots.admit());
  // A route with a body is screened on arrival (a refusal leaves its body unread) and takes a
  // concurrency slot only once its body has arrived: a client that stalls mid-upload holds nothing.
  // A named function expression, as the closures below: a profile (bench/profile.ts) names JIT code by its
  // function, and Bun's transpiler inlines a single-use const, so an arrow's inferred name would be lost.
  return function screened(req: Request): Response | Promise<Response> {
    const refused = slots.screen();
    // A large body still coming is read and dropped first (bounded), so the client reads the 503, not a reset. Not
    // under CPU overload: there a refusal must stay as cheap as it can be (its headers are not even read), or the
    // refusals eat the core the admitted lookups need.
    if (refused < 0) return refused !== REFUSED_CPU && stillSending(req) ? discardBody(req, body.limit).then(() => shed(refused)) : shed(refused);
    const start = performance.now();
    let out: Promise<Response>;
    try {
      out = readBodyThen(req, body, function admitWithBody(value) {
        return withSlot(req, value, slots.acquire(), start);
      });
    } catch (e) {
      return refusedUnread(req, body, () => unread(start, e));
    }
    return out.catch(function unreadable(e: unknown) {
      return unread(start, e);
    });
  };
}

/** Bodies at least this large (or of unknown length) may still be on their way when a refusal is ready. */
const LARGE_BODY = 64 << 10;

/**
 * Is the client likely still sending its body? On loopback a refused body up
 * to ~1 MiB had arrived whole, but Python's urllib (Connection: close) lost 3
 * of 4 answers to 2 MiB bodies as a broken pipe: the server closed while it
 * was still sending. Small bodies are not read: a refusal stays cheap.
 */
function stillSending(req: Request): boolean {
  if (req.body === null) return false;
  const headers = req.headers;
  const length = headers.get("content-length");
  return length === null || Number(length) >= LARGE_BODY || headers.get("connection")?.toLowerCase() === "close";
}

/** A refusal decided on the headers (415, a compressed write) before any of the body was read: the body is read and dropped first (bounded), so the client reads it. */
function refusedUnread(req: Request, body: BodyReading, answer: () => Response | Promise<Response>): Response | Promise<Response> {
  return req.body === null ? answer() : discardBody(req, body.limit).then(answer);
}

export interface RouteMetrics {
  readonly requests: { labels(route: string, status: string): { inc(): void } };
  readonly errors: { labels(route: string, code: string): { inc(): void } };
  readonly latency: { labels(route: string): HistogramHandle };
  /** Requests whose work was given up at its bound (RouteBound). */
  readonly overdue: { labels(route: string): { inc(): void } };
}

export function routeMetrics(registry: MetricsRegistry): RouteMetrics {
  return {
    requests: registry.counter("quiver_http_requests_total", "HTTP requests by route and status.", ["route", "status"]),
    errors: registry.counter("quiver_http_server_errors_total", "HTTP 5xx answers by route and error code.", ["route", "code"]),
    latency: registry.histogram("quiver_http_request_duration_seconds", "HTTP request latency by route (requests admitted or refused on their body: not those shed by admission, which quiver_http_requests_total counts as 503).", ["route"]),
    overdue: registry.counter("quiver_http_overdue_work_total", "HTTP requests whose work had not ended by its bound: answered 503 overdue, its admission slot released (storage broke its deadline: a bug).", ["route"]),
  };
}
