import { invalid, invalidArgument, payloadTooLarge, QuiverError, unavailable, unsupportedMediaType } from "../../errors/index.ts";
import type { BodyBudget } from "./body-budget.ts";
import { parseJsonExact, parseJsonNotingFloats } from "../../text/exact-json.ts";
import { duplicateKeyPath } from "../../text/json-keys.ts";
import { MsgpackReader, TooManyContainers } from "./msgpack-reader.ts";

export const MSGPACK = "application/msgpack";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8");
const msgpackDecoder = new MsgpackReader({ maxStrLength: 16 << 20, maxArrayLength: 1 << 20, maxMapLength: 1 << 16, maxDepth: 64 });

/** The media type of a Content-Type value, lower case, without parameters ("application/json; charset=utf-8" → "application/json"). */
function mediaType(type: string): string {
  const semi = type.indexOf(";");
  return (semi < 0 ? type : type.slice(0, semi)).trim();
}

function isMsgpackType(media: string): boolean {
  return media === MSGPACK || media === "application/x-msgpack";
}

const MSGPACK_ANYCASE = /msgpack/i;

/**
 * Does the client want MessagePack back? Yes when its Accept names
 * MessagePack with a non-zero weight and no JSON range (application/json,
 * application/*, *\/*) with a higher one. JSON clients, which do not name
 * it, pay one substring search.
 */
export function wantsMsgpack(accept: string | null): boolean {
  // Media types are case-insensitive (RFC 9110): "application/MsgPack" asks for MessagePack too.
  if (accept === null || !MSGPACK_ANYCASE.test(accept)) return false;
  let msgpackQ = 0;
  let jsonQ = 0;
  for (const range of accept.toLowerCase().split(",")) {
    const media = mediaType(range);
    const q = weightOf(range);
    if (isMsgpackType(media)) msgpackQ = Math.max(msgpackQ, q);
    else if (media === "application/json" || media === "application/*" || media === "*/*") jsonQ = Math.max(jsonQ, q);
  }
  return msgpackQ > 0 && msgpackQ >= jsonQ;
}

/** The `q` parameter of an Accept range (1 when absent or unreadable, as RFC 9110 defaults it). */
function weightOf(range: string): number {
  const m = /;\s*q\s*=\s*([0-9.]+)/.exec(range);
  if (m === null) return 1;
  const q = Number(m[1]);
  return q >= 0 && q <= 1 ? q : 1;
}

/**
 * Reads and parses a body strictly (bytes that are not UTF-8 are a 400, never
 * stored as U+FFFD), for writes and routes off the hot path.
 */
export function readBody(req: Request, limit: number, allowMsgpack: boolean): Promise<unknown> {
  return bodyThen(req, { limit, allowMsgpack, strict: true, maxContainers: SMALL_BODY_CONTAINERS, exactIntegers: false }, identity);
}

/** The container budget of a body read by `readBody` (small admin bodies). */
const SMALL_BODY_CONTAINERS = 4096;

/**
 * Most objects and arrays a route's body may hold, from its row limit: a row
 * is a map, and each of its values may be a list (array and embedding
 * features), 32 of them a row on average, plus room for the rest of the
 * request. Without a budget a 4 MiB body of empty maps (one byte each in
 * MessagePack, three in JSON) decoded into millions of objects before any
 * row limit was checked: 16 such lookups at once took a server from 0.7 to
 * 1.3 GB, over the deployment's memory limit.
 */
export function containerBudget(maxRows: number): number {
  return maxRows * 32 + SMALL_BODY_CONTAINERS;
}

/**
 * How a route's body is read before its handler runs (route.ts reads it
 * before admission gives it a slot): JSON (also when no content type is given)
 * or MessagePack when `allowMsgpack`. The size limit is enforced before
 * reading when Content-Length is known and again after. Header problems throw
 * at once; every failure is a 4xx QuiverError, never a crash. The common case
 * (JSON with a known length) costs one promise reaction: Bun's native parse,
 * then the continuation. That parse reads bytes that are not UTF-8 as U+FFFD
 * instead of refusing them: fine for a lookup (such a key reads as one with
 * U+FFFD in its place; strict decoding would cost ~1 µs of a ~14 µs lookup),
 * not for a write, so writes read `strict`.
 */
export interface BodyReading {
  /** Largest body accepted (bytes); beyond it a 413. */
  readonly limit: number;
  /** Also accept `application/msgpack`. */
  readonly allowMsgpack: boolean;
  /**
   * Read the body as JSON whatever its Content-Type says (Feast's routes: Feast's server does, and its documented
   * `curl -d '{...}'` sends application/x-www-form-urlencoded). Otherwise a type other than JSON (or MessagePack
   * when allowed) is a 415.
   */
  readonly anyTypeAsJson?: boolean;
  /** Refuse bytes that are not UTF-8 and compressed bodies (writes), instead of reading them leniently (lookups). */
  readonly strict: boolean;
  /** Most objects and arrays the body may hold (containerBudget), counted before they are built. */
  readonly maxContainers: number;
  /**
   * Read integer literals past 2^53 exactly, as bigints (int64 values and join keys: parseJsonExact), where
   * JSON.parse rounds them. A body read in full anyway (a write, a large or chunked one) costs nothing more;
   * a lookup that Bun would parse natively (req.json()) must read its text first, a string of the body's
   * size per request (+~0.5 KB per lookup measured with bench/alloc, json-1: 2.41 → 2.97 KB). Without it, such
   * a literal arrives rounded and the serving layer refuses it as an int64.
   */
  readonly exactIntegers: boolean;
  /**
   * With exactIntegers, also note each whole number written as a float literal (`1.0`, `1e2`: writtenAsFloat,
   * parseJsonNotingFloats), which JSON.parse gives as the integer: Feast lookups, where a string join key sent as
   * the integer 7 is the key "7" but 1.0 is no integer (Feast reads the key "1.0"). Text without a digit before a
   * point or an exponent parses as before.
   */
  readonly floatLiterals?: boolean;
  /** Bytes received of bodies over 64 KiB (and of bodies without a length) being read on the edge; past it a 503 (body-budget.ts). */
  readonly budget?: BodyBudget;
}

/** Reads and parses `req`'s body as `reading` says, then calls `next` with the value (no extra promise hop). */
export function readBodyThen<T>(req: Request, reading: BodyReading, next: (value: unknown) => T | Promise<T>): Promise<T> {
  return bodyThen(req, reading, next);
}

/**
 * Bodies up to this size are parsed without counting their containers first:
 * at most one per two bytes, which is a bounded number of objects.
 */
const UNCOUNTED_BODY = 64 << 10;

function bodyThen<T>(req: Request, reading: BodyReading, next: (value: unknown) => T | Promise<T>): Promise<T> {
  const { limit, allowMsgpack, strict, maxContainers, exactIntegers } = reading;
  const parse = !exactIntegers ? jsonParse : reading.floatLiterals === true ? parseJsonNotingFloats : parseJsonExact;
  const headers = req.headers;
  // Writes say why a compressed body is refused; a lookup's (one header read fewer on the hot path) fails to parse instead.
  if (strict) {
    const encoding = headers.get("content-encoding");
    if (encoding !== null && encoding.trim().toLowerCase() !== "identity") {
      throw unsupportedMediaType(`Content-Encoding "${encoding.slice(0, 40)}" is not supported; send the body uncompressed`, "(headers).content-encoding");
    }
  }
  const rawType = reading.anyTypeAsJson === true ? null : headers.get("content-type");
  const type = rawType === null ? "" : rawType.toLowerCase();
  const media = type === "" ? "" : mediaType(type);
  const msgpack = isMsgpackType(media);
  if (type !== "" && media !== "application/json" && !(msgpack && allowMsgpack)) {
    const accepted = allowMsgpack ? "application/json or application/msgpack" : "application/json";
    throw unsupportedMediaType(`Content-Type "${type}" is not supported; send ${accepted}`, "(headers).content-type");
  }
  const length = headers.get("content-length");
  const declared = length === null ? -1 : Number(length);
  if (declared > limit) {
    // Read and discard what the client is still sending: answering and closing mid-upload makes
    // common clients (Python's urllib and requests) fail with a broken pipe instead of reading the 413.
    return drain(req, drainBound(limit)).then(() => {
      throw tooLarge(declared, limit);
    });
  }
  if (declared === 0) throw emptyBody();
  if (declared > 0 && !msgpack && !strict && declared <= UNCOUNTED_BODY) {
    // Known length within the limit: let Bun decode and parse natively in one step, unless integers past 2^53 must
    // arrive exact, which takes the text (exactIntegers).
    return exactIntegers ? req.text().then((text) => next(parseOrThrow(text, parse)), unreadable) : req.json().then(next, invalidJson);
  }
  const budget = reading.budget;
  // A large body reserves its bytes as they arrive, not its declared length up front: 70 connections that sent
  // only headers declaring 4 MiB (no body byte, no memory held) took the whole 256 MiB budget, and every body over
  // 64 KiB was a 503 for as long as they stayed (12 s, then reconnect). Its bytes received are what it holds.
  if (declared > UNCOUNTED_BODY && budget !== undefined) {
    return readCounted(req, limit, budget).then((buf) => next(parseBuffer(buf, limit, msgpack, maxContainers, parse, strict, strict)));
  }
  if (declared > 0) return req.arrayBuffer().then((buf) => next(parseBuffer(buf, limit, msgpack, maxContainers, parse, strict || declared <= UNCOUNTED_BODY, strict)), unreadable);
  // No length (chunked): counted as it comes. arrayBuffer() held it whole first: 32 such uploads of a few MB over the
  // limit took the server from 94 to 798 MB before their 413s.
  return readCounted(req, limit, budget).then((buf) => next(parseBuffer(buf, limit, msgpack, maxContainers, parse, true, strict)));
}

/** The answer to a body the edge has no room to read now (body-budget.ts): retryable, as a shed request's. */
function overBudget(): never {
  throw unavailable("the server is reading as many request bodies as it holds at once; retry shortly", undefined, "bodies_in_flight");
}

/**
 * A body without a declared length (or a large one, with `budget`), read up to `limit` bytes; past it the rest is
 * drained (as a 413's) and a 413 thrown. With `budget`, each chunk is reserved from it as it comes (all given back
 * once read or failed): past it, a 503.
 */
async function readCounted(req: Request, limit: number, budget?: BodyBudget): Promise<ArrayBuffer> {
  const reader = req.body?.getReader();
  if (!reader) return new ArrayBuffer(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  let reserved = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (budget !== undefined) {
        if (!budget.take(value.byteLength)) {
          // Dropped, so given back now, not after the drain (up to DRAIN_MS for a stalled client).
          chunks.length = 0;
          budget.give(reserved);
          reserved = 0;
          await drainReader(reader, drainBound(limit) - size);
          overBudget();
        }
        reserved += value.byteLength;
      }
      // Only a body without a length gets here: Bun ends one with a length at its length (at most `limit`).
      if (size > limit) {
        chunks.length = 0;
        budget?.give(reserved);
        reserved = 0;
        await drainReader(reader, drainBound(limit) - size);
        throw payloadTooLarge(`body is over ${limit} bytes (sent without a length); the limit is ${limit}`, "(body)");
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof QuiverError) throw e;
    return unreadable(e);
  } finally {
    budget?.give(reserved);
    reader.releaseLock();
  }
  if (chunks.length === 1) {
    const only = chunks[0]!;
    return only.byteOffset === 0 && only.byteLength === only.buffer.byteLength ? (only.buffer as ArrayBuffer) : only.slice().buffer;
  }
  const out = new Uint8Array(size);
  for (let i = 0, at = 0; i < chunks.length; at += chunks[i]!.byteLength, i++) out.set(chunks[i]!, at);
  return out.buffer;
}

const identity = (v: unknown): unknown => v;

function invalidJson(e: unknown): never {
  throw invalidArgument("invalid_json", `body is not valid JSON: ${(e as Error).message}`, { path: "(body)" });
}

function unreadable(e: unknown): never {
  throw invalidArgument("invalid_body", `could not read the request body: ${(e as Error).message}`, { path: "(body)" });
}

/** A body read without a usable length (chunked, or MessagePack). */
/**
 * `strictText`: bytes that are not UTF-8 are a 400 (writes; and bodies without
 * a length, as before); else they read as U+FFFD, as Bun's native parse of a
 * lookup reads them (a lookup over 64 KiB comes here to be counted first).
 * `uniqueKeys`: a key twice in one JSON object is a 400 naming it (writes:
 * JSON.parse kept the last silently, so which entity a push row wrote
 * depended on the parser; MessagePack maps are refused alike).
 */
function parseBuffer(buf: ArrayBuffer, limit: number, msgpack: boolean, maxContainers: number, parse: JsonParse, strictText: boolean, uniqueKeys: boolean): unknown {
  if (buf.byteLength > limit) throw tooLarge(buf.byteLength, limit);
  if (buf.byteLength === 0) throw emptyBody();
  if (msgpack) {
    try {
      return msgpackDecoder.decode(new Uint8Array(buf), maxContainers);
    } catch (e) {
      if (e instanceof TooManyContainers) throw tooComplex(maxContainers);
      throw invalidArgument("invalid_msgpack", `body is not valid MessagePack: ${(e as Error).message}`, { path: "(body)" });
    }
  }
  if (buf.byteLength > UNCOUNTED_BODY && !jsonContainersWithin(new Uint8Array(buf), maxContainers)) throw tooComplex(maxContainers);
  let text: string;
  try {
    text = (strictText ? utf8 : lenientUtf8).decode(buf);
  } catch {
    throw invalidArgument("invalid_body", "body is not valid UTF-8", { path: "(body)" });
  }
  const value = parseOrThrow(text, parse);
  if (uniqueKeys) {
    const twice = duplicateKeyPath(text);
    if (twice !== undefined) throw invalid("duplicate_key", twice, "this key appears twice in one object; JSON parsers differ on which one counts, so give each key once");
  }
  return value;
}

/** How a body's text is parsed: JSON.parse, or (exactIntegers) parseJsonExact / parseJsonNotingFloats. */
type JsonParse = (text: string) => unknown;
const jsonParse: JsonParse = (text) => JSON.parse(text);

/** The body's JSON as `parse` reads it, or a 400. */
function parseOrThrow(text: string, parse: JsonParse): unknown {
  try {
    return parse(text);
  } catch (e) {
    return invalidJson(e);
  }
}

/** Most bytes read and discarded to deliver a 413 cleanly; beyond it the server cap (Bun's maxRequestBodySize) resets the connection. */
export function drainBound(limit: number): number {
  return Math.max(4 * limit, 16 << 20);
}

/**
 * Reads and drops a body the answer will not use (up to drainBound(limit), for
 * at most DRAIN_MS), so a client still sending it reads the answer instead of
 * a reset connection: common clients (Python's urllib) report a 401 or 413
 * given mid-upload as a broken pipe.
 */
export function discardBody(req: Request, limit: number): Promise<void> {
  return drain(req, drainBound(limit));
}

/** Longest a 413 waits for the rest of an oversized body (a slow or stalled sender does not hold the handler). */
const DRAIN_MS = 2000;

/** Reads and drops up to `bound` bytes of the body, for at most DRAIN_MS. */
async function drain(req: Request, bound: number): Promise<void> {
  const reader = req.body?.getReader();
  if (!reader) return;
  await drainReader(reader, bound);
}

/** What the body's reader is used for here (Bun's and the DOM's reader types differ). */
interface BodyReader {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>;
  cancel(): Promise<void>;
}

async function drainReader(reader: BodyReader, bound: number): Promise<void> {
  const stop = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_MS);
  try {
    for (let read = 0; read < bound; ) {
      const { done, value } = await reader.read();
      if (done || value === undefined) break;
      read += value.byteLength;
    }
  } catch {
    // The client went away or the drain timed out: nothing more to do.
  } finally {
    clearTimeout(stop);
    reader.cancel().catch(() => {});
  }
}

/**
 * Does the JSON text in `b` open at most `max` objects and arrays? A pass over
 * the bytes (strings skipped, escapes included) before JSON.parse builds them;
 * text that is not JSON at all is left to the parse to refuse.
 */
function jsonContainersWithin(b: Uint8Array, max: number): boolean {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x22) {
      // A string: to its closing quote, stepping over escaped characters.
      for (i++; i < b.length; i++) {
        const d = b[i]!;
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if ((c === 0x7b || c === 0x5b) && ++n > max) return false;
  }
  return true;
}

function tooComplex(max: number): QuiverError {
  return invalidArgument("too_complex", `body holds more than ${max} objects and arrays, the most its row limit allows; send fewer rows per request`, { path: "(body)" });
}

function emptyBody(): QuiverError {
  return invalidArgument("invalid_body", "the request body is empty", { path: "(body)" });
}

function tooLarge(size: number, limit: number): QuiverError {
  return payloadTooLarge(`body is ${size} bytes; the limit is ${limit}`, "(body)");
}

/** The body must be a JSON object; returns it typed as a record. */
export function asObject(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalidArgument("invalid_request", "body must be a JSON object", { path: "(body)" });
  }
  return value as Record<string, unknown>;
}

/** Rejects unknown top-level fields: a typo like `fillDefault` should fail loudly, not be ignored. */
export function rejectUnknownFields(body: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  // for-in, not Object.keys: no array of keys per request. A parsed body (JSON.parse, or the
  // MessagePack reader's `{}`) is a plain object, so for-in sees exactly its own keys.
  for (const k in body) {
    if (!allowed.has(k)) throw invalid("invalid_request", k, `unknown field; expected one of ${[...allowed].join(", ")}`);
  }
}
