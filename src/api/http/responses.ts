import { Encoder } from "@msgpack/msgpack";
import { QuiverError } from "../../errors/index.ts";
import { MSGPACK } from "./body.ts";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" } as const;
const MSGPACK_HEADERS = { "content-type": MSGPACK } as const;
const msgpackEncoder = new Encoder({ ignoreUndefined: true });

export function json(body: unknown, status = 200, extraHeaders?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: extraHeaders ? { ...JSON_HEADERS, ...extraHeaders } : JSON_HEADERS });
}

export function msgpack(body: unknown, status = 200): Response {
  return new Response(msgpackEncoder.encode(body), { status, headers: MSGPACK_HEADERS });
}

/** Normalizes anything thrown into a QuiverError; unknown errors become a 500 that hides internals. */
export function toQuiverError(e: unknown): QuiverError {
  if (e instanceof QuiverError) return e;
  const err = e as { status?: number; retryable?: boolean; code?: string; message?: string };
  if (err && err.retryable === true) return new QuiverError(err.code ?? "unavailable", 503, err.message ?? "storage unavailable", { retryable: true, cause: e });
  console.error("quiver: unexpected error", e);
  return new QuiverError("internal", 500, "internal error; see the server log", { cause: e });
}

function retryHeaders(e: QuiverError): Record<string, string> | undefined {
  return e.retryable && e.status === 503 ? { "retry-after": "1" } : undefined;
}

/** Quiver's error body: `{"error": {"code", "message", "path"?, "issues"?}}`. */
export function errorResponse(e: unknown, headers?: Record<string, string>): Response {
  const q = toQuiverError(e);
  const error: Record<string, unknown> = { code: q.code, message: q.message };
  if (q.path !== undefined) error.path = q.path;
  if (q.issues.length > 1) error.issues = q.issues;
  return json({ error }, q.status, headers ?? retryHeaders(q));
}

/** Feast's error body: `{"error": "...", "status_code": N}`. */
export function feastErrorResponse(e: unknown): Response {
  const q = toQuiverError(e);
  return json({ error: q.message, status_code: q.status }, q.status, retryHeaders(q));
}
