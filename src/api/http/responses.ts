import { type QuiverError, toQuiverError } from "../../errors/index.ts";
import { RowValuesEncoder } from "../../kv/row-values-encoder.ts";
import { CORKED_BYTES, lateBody } from "../../runtime/index.ts";
import { MSGPACK } from "./body.ts";
import { DEGRADED_HEADER } from "../answer-headers.ts";
import { httpStatusOf, errorHeaders } from "./error-status.ts";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" } as const;
const MSGPACK_HEADERS = { "content-type": MSGPACK } as const;
const JSON_INIT: ResponseInit = { headers: new Headers(JSON_HEADERS) };
const MSGPACK_INIT: ResponseInit = { headers: new Headers(MSGPACK_HEADERS) };
/** Answers built from values: a grace copy's big int64 is a bigint, which the plain library encoder refused (a 500). */
const msgpackEncoder = new RowValuesEncoder();
const utf8 = new TextEncoder();

/** An answer carries `x-quiver-degraded` (some shard could not answer): admission counts it as a failure. */
export const DEGRADED = 1;
/**
 * An answer whose body leaves in one send only from inside its request's
 * callback (more than CORKED_BYTES, not a late body): it must not be held
 * for its turn's batch (runtime/turn-batch.ts).
 */
export const LEAVES_NOW = 2;

/**
 * What an answer carries beyond its bytes (DEGRADED, LEAVES_NOW), kept beside
 * the Response instead of read back from its headers, which would make Bun
 * materialise a Headers object per answer. Most answers have no entry.
 */
const answerMarks = new WeakMap<Response, number>();

/** The marks of an answer built here (0 when none). */
export function answerMarksOf(res: Response): number {
  return answerMarks.get(res) ?? 0;
}

/** Was this answer built with the degraded header? */
export function isDegradedAnswer(res: Response): boolean {
  return (answerMarksOf(res) & DEGRADED) !== 0;
}

/** Notes a degraded answer when its extra headers say so, and one that must leave in its callback; returns it. */
function marked(res: Response, extraHeaders: Record<string, string> | undefined, leavesNow: boolean): Response {
  const marks = (extraHeaders !== undefined && extraHeaders[DEGRADED_HEADER] !== undefined ? DEGRADED : 0) | (leavesNow ? LEAVES_NOW : 0);
  if (marks !== 0) answerMarks.set(res, marks);
  return res;
}

/**
 * JSON.stringify, which refuses a bigint (an int64 past 2^53: src/kv/int64.ts,
 * in a match answer's values): a body holding one is written again with it as
 * its exact integer literal, as Feast's Python server writes int64s. Bodies
 * without one pay nothing more.
 */
function stringify(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return JSON.stringify(body, bigIntLiteral);
  }
}

function bigIntLiteral(_key: string, v: unknown): unknown {
  return typeof v === "bigint" ? (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(v.toString()) : v;
}

/** `late`: completed after the request's socket callback returned (runtime/late-body.ts). */
export function json(body: unknown, status = 200, extraHeaders?: Record<string, string>, late = false): Response {
  const text = stringify(body);
  // UTF-8 takes at most 3 bytes per UTF-16 unit: a text that short fits the cork buffer, no need to encode it here.
  const large = text.length * 3 > CORKED_BYTES;
  const payload = late && large ? lateBody(utf8.encode(text)) : text;
  return marked(new Response(payload, { status, headers: extraHeaders ? { ...JSON_HEADERS, ...extraHeaders } : JSON_HEADERS }), extraHeaders, large && !late);
}

/**
 * A 200 answer whose JSON or MessagePack bytes an encoder already wrote (the
 * Response copies them). `late`: completed after the request's socket
 * callback returned, once storage answered (runtime/late-body.ts).
 */
export function encodedAnswer(bytes: Uint8Array, msgpack: boolean, extraHeaders?: Record<string, string>, late = false): Response {
  const body = late ? lateBody(bytes) : bytes;
  const leavesNow = !late && bytes.length > CORKED_BYTES;
  // A prepared Headers is copied natively (the answer's headers stay its own); a plain object is converted per answer, ~2x the cost.
  if (extraHeaders === undefined) {
    const res = new Response(body, msgpack ? MSGPACK_INIT : JSON_INIT);
    return leavesNow ? marked(res, undefined, true) : res;
  }
  return marked(new Response(body, { headers: { ...(msgpack ? MSGPACK_HEADERS : JSON_HEADERS), ...extraHeaders } }), extraHeaders, leavesNow);
}

export function msgpack(body: unknown, status = 200, extraHeaders?: Record<string, string>, late = false): Response {
  const bytes = msgpackEncoder.encode(body);
  return marked(new Response(late ? lateBody(bytes) : bytes, { status, headers: extraHeaders ? { ...MSGPACK_HEADERS, ...extraHeaders } : MSGPACK_HEADERS }), extraHeaders, !late && bytes.length > CORKED_BYTES);
}

/** Quiver's error body: `{"error": {"code", "message", "path"?, "issues"?}}`. */
export function errorResponse(e: unknown, headers?: Record<string, string>): Response {
  const q = toQuiverError(e);
  const status = httpStatusOf(q);
  return json({ error: quiverErrorBody(q) }, status, headers ?? errorHeaders(q, status));
}

/**
 * An error answer built once and handed out many times: for refusals that
 * must cost next to nothing (load shedding answers most requests under
 * overload). Same bytes and headers as `errorResponse` / `feastErrorResponse`.
 */
export function prebuiltError(e: QuiverError, feast: boolean): () => Response {
  const status = httpStatusOf(e);
  const body = new TextEncoder().encode(JSON.stringify(feast ? feastErrorBody(e, status) : { error: quiverErrorBody(e) }));
  const init: ResponseInit = { status, headers: new Headers({ ...JSON_HEADERS, ...errorHeaders(e, status) }) };
  return () => new Response(body, init);
}

function quiverErrorBody(q: QuiverError): Record<string, unknown> {
  const error: Record<string, unknown> = { code: q.code, message: q.message };
  if (q.path !== undefined) error.path = q.path;
  if (q.issues.length > 1) error.issues = q.issues;
  return error;
}

function feastErrorBody(q: QuiverError, status: number): Record<string, unknown> {
  return { error: q.message, status_code: status };
}

/** Feast's error body: `{"error": "...", "status_code": N}`. */
export function feastErrorResponse(e: unknown): Response {
  const q = toQuiverError(e);
  const status = httpStatusOf(q);
  return json(feastErrorBody(q, status), status, errorHeaders(q, status));
}
