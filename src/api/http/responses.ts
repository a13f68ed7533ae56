import { Encoder } from "@msgpack/msgpack";
import { toQuiverError } from "../../errors/index.ts";
import { MSGPACK } from "./body.ts";
import { httpStatusOf, retryHeaders } from "./error-status.ts";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" } as const;
const MSGPACK_HEADERS = { "content-type": MSGPACK } as const;
const msgpackEncoder = new Encoder({ ignoreUndefined: true });

export function json(body: unknown, status = 200, extraHeaders?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: extraHeaders ? { ...JSON_HEADERS, ...extraHeaders } : JSON_HEADERS });
}

/** A 200 answer whose JSON or MessagePack bytes an encoder already wrote (the Response copies them). */
export function encodedAnswer(bytes: Uint8Array, msgpack: boolean, extraHeaders?: Record<string, string>): Response {
  const headers = msgpack ? MSGPACK_HEADERS : JSON_HEADERS;
  return new Response(bytes, { headers: extraHeaders ? { ...headers, ...extraHeaders } : headers });
}

export function msgpack(body: unknown, status = 200, extraHeaders?: Record<string, string>): Response {
  return new Response(msgpackEncoder.encode(body), { status, headers: extraHeaders ? { ...MSGPACK_HEADERS, ...extraHeaders } : MSGPACK_HEADERS });
}

/** Quiver's error body: `{"error": {"code", "message", "path"?, "issues"?}}`. */
export function errorResponse(e: unknown, headers?: Record<string, string>): Response {
  const q = toQuiverError(e);
  const error: Record<string, unknown> = { code: q.code, message: q.message };
  if (q.path !== undefined) error.path = q.path;
  if (q.issues.length > 1) error.issues = q.issues;
  const status = httpStatusOf(q);
  return json({ error }, status, headers ?? retryHeaders(q, status));
}

/** Feast's error body: `{"error": "...", "status_code": N}`. */
export function feastErrorResponse(e: unknown): Response {
  const q = toQuiverError(e);
  const status = httpStatusOf(q);
  return json({ error: q.message, status_code: status }, status, retryHeaders(q, status));
}
