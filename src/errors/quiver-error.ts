/** One problem with a client's input or a definitions file, located by path. */
export interface Issue {
  /** Where the problem is, e.g. `entities[3].driver_id` or `featureViews[2].features[0].type`. */
  readonly path: string;
  readonly message: string;
}

/**
 * What went wrong, independent of any transport. Each edge maps a kind to its
 * own code in one place (`src/api/http/error-status.ts` for HTTP statuses,
 * `src/api/grpc/` for gRPC status codes); errors never carry a transport code.
 */
export type ErrorKind =
  /** The request is malformed or a value fails validation (HTTP 400, gRPC INVALID_ARGUMENT). */
  | "invalid_argument"
  /**
   * The request names a feature view, feature or feature service the registry
   * does not define. Over HTTP that is a body validation error (400); gRPC
   * answers NOT_FOUND, as Feast's servers do.
   */
  | "unknown_name"
  /** The addressed resource (route, migration) does not exist (HTTP 404, gRPC NOT_FOUND). */
  | "not_found"
  /** The method is not served at that address (HTTP 405, gRPC UNIMPLEMENTED). */
  | "method_not_allowed"
  /** The system is not in the state the call needs, e.g. no shards or a migration running (HTTP 409, gRPC FAILED_PRECONDITION). */
  | "failed_precondition"
  /** No or wrong credentials (HTTP 401, gRPC UNAUTHENTICATED). */
  | "unauthenticated"
  /** The request is larger than the limit (HTTP 413, gRPC RESOURCE_EXHAUSTED). */
  | "payload_too_large"
  /** The body's encoding is not one the server reads (HTTP 415, gRPC INVALID_ARGUMENT). */
  | "unsupported_media_type"
  /** Load shedding or a quota: try again later (HTTP 429, gRPC RESOURCE_EXHAUSTED). */
  | "resource_exhausted"
  /** The caller's deadline passed before the work finished (HTTP 504, gRPC DEADLINE_EXCEEDED). */
  | "deadline_exceeded"
  /** The client went away or cancelled the call (HTTP 499, gRPC CANCELLED). */
  | "cancelled"
  /** Storage or a dependency cannot serve right now (HTTP 503 + Retry-After, gRPC UNAVAILABLE). */
  | "unavailable"
  /** A bug: details go to the log, never to the client (HTTP 500, gRPC INTERNAL). */
  | "internal";

export interface QuiverErrorOptions {
  readonly path?: string;
  readonly retryable?: boolean;
  readonly cause?: unknown;
  readonly issues?: readonly Issue[];
}

/**
 * The only error type that crosses module boundaries. `kind` says what went
 * wrong (each edge maps it to its own status), `code` is stable and finer
 * (clients and dashboards key on it), `retryable` tells callers whether the
 * same request may succeed later, `path` names the offending field.
 * Create them through the helpers below, not the constructor.
 */
export class QuiverError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly retryable: boolean;
  readonly path: string | undefined;
  /** Every problem found, when validation collected more than one. */
  readonly issues: readonly Issue[];

  constructor(kind: ErrorKind, code: string, message: string, opts: QuiverErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "QuiverError";
    this.kind = kind;
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.path = opts.path;
    this.issues = opts.issues ?? (opts.path === undefined ? [] : [{ path: opts.path, message }]);
  }
}

/** Input that fails validation at `path`; the message is prefixed with the path. */
export function invalid(code: string, path: string, message: string): QuiverError {
  return new QuiverError("invalid_argument", code, `${path}: ${message}`, { path });
}

/** Input that fails validation, with the message as given (it already says where, or `opts.path` does). */
export function invalidArgument(code: string, message: string, opts: QuiverErrorOptions = {}): QuiverError {
  return new QuiverError("invalid_argument", code, message, opts);
}

/** Every issue found (registry files report all problems at once). */
export function invalidAll(code: string, issues: readonly Issue[]): QuiverError {
  const first = issues[0];
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join("; ");
  return new QuiverError("invalid_argument", code, summary, { path: first?.path, issues });
}

/** The request names a view, feature or service that does not exist; prefixed with the path like `invalid`. */
export function unknownName(code: string, path: string, message: string): QuiverError {
  return new QuiverError("unknown_name", code, `${path}: ${message}`, { path });
}

/** Storage that cannot take or serve the request right now; retryable. */
export function unavailable(message: string, cause?: unknown, code = "unavailable"): QuiverError {
  return new QuiverError("unavailable", code, message, { retryable: true, cause });
}

/** The addressed resource does not exist. */
export function notFound(code: string, message: string, path?: string): QuiverError {
  return new QuiverError("not_found", code, message, path === undefined ? {} : { path });
}

export function methodNotAllowed(message: string, path?: string): QuiverError {
  return new QuiverError("method_not_allowed", "method_not_allowed", message, path === undefined ? {} : { path });
}

export function failedPrecondition(code: string, message: string, path?: string): QuiverError {
  return new QuiverError("failed_precondition", code, message, path === undefined ? {} : { path });
}

export function unauthenticated(message: string, path?: string): QuiverError {
  return new QuiverError("unauthenticated", "unauthorized", message, path === undefined ? {} : { path });
}

export function payloadTooLarge(message: string, path?: string): QuiverError {
  return new QuiverError("payload_too_large", "payload_too_large", message, path === undefined ? {} : { path });
}

export function unsupportedMediaType(message: string, path?: string): QuiverError {
  return new QuiverError("unsupported_media_type", "unsupported_media_type", message, path === undefined ? {} : { path });
}

/** Shed or over quota: retryable after a pause. */
export function resourceExhausted(code: string, message: string, cause?: unknown): QuiverError {
  return new QuiverError("resource_exhausted", code, message, { retryable: true, cause });
}

/** The caller's deadline passed; retrying with a longer deadline may work. */
export function deadlineExceeded(message: string, cause?: unknown, code = "deadline_exceeded"): QuiverError {
  return new QuiverError("deadline_exceeded", code, message, { retryable: true, cause });
}

export function cancelled(message: string, cause?: unknown): QuiverError {
  return new QuiverError("cancelled", "cancelled", message, { cause });
}

/** A bug; the client sees only a generic message, the cause goes to the log. */
export function internal(message: string, cause?: unknown): QuiverError {
  return new QuiverError("internal", "internal", message, { cause });
}

/**
 * Normalizes anything thrown into a QuiverError: a QuiverError as it is, a
 * foreign error that says it is retryable as `unavailable`, anything else as
 * `internal` (logged, never shown to the client).
 */
export function toQuiverError(e: unknown): QuiverError {
  if (e instanceof QuiverError) return e;
  const err = e as { retryable?: boolean; code?: unknown; message?: string } | null;
  if (err && err.retryable === true) return unavailable(err.message ?? "storage unavailable", e, typeof err.code === "string" ? err.code : "unavailable");
  console.error("quiver: unexpected error", e);
  return internal("internal error; see the server log", e);
}
