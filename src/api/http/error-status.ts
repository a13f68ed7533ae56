import type { ErrorKind, QuiverError } from "../../errors/index.ts";

/**
 * The HTTP edge's one mapping from error kind to status. Unknown names in a
 * request body are a 400 (the URL exists; the body is wrong), which is what
 * the HTTP contract has always said.
 */
const STATUS_OF_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid_argument: 400,
  unknown_name: 400,
  unauthenticated: 401,
  not_found: 404,
  method_not_allowed: 405,
  failed_precondition: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  resource_exhausted: 429,
  cancelled: 499,
  internal: 500,
  unavailable: 503,
  deadline_exceeded: 504,
};

export function httpStatusOf(e: QuiverError): number {
  return STATUS_OF_KIND[e.kind];
}

/** A 401's challenge (RFC 9110 §11.6.1: a 401 must say which scheme it wants). */
const CHALLENGE: Readonly<Record<string, string>> = { "www-authenticate": 'Bearer realm="quiver"' };

/**
 * Headers an error answer carries for its status. Retryable shedding and
 * unavailability tell the client when to come back: when the failing part
 * knows (an open breaker: `retryAfterSeconds`), else 1 s. A 401 names the
 * scheme it expects.
 */
export function errorHeaders(e: QuiverError, status: number): Readonly<Record<string, string>> | undefined {
  if (status === 401) return CHALLENGE;
  if (!e.retryable || (status !== 503 && status !== 429)) return undefined;
  const after = (e as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  return { "retry-after": typeof after === "number" ? String(after) : "1" };
}
