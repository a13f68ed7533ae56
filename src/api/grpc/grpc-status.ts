import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import type { ErrorKind, QuiverError } from "../../errors/index.ts";
import { clipText } from "../../text/surrogates.ts";

/**
 * The gRPC edge's one mapping from error kind to status code. Unknown views,
 * features and services are NOT_FOUND here, as Feast's gRPC servers answer.
 */
const CODE_OF_KIND: Readonly<Record<ErrorKind, status>> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unknown_name: status.NOT_FOUND,
  not_found: status.NOT_FOUND,
  method_not_allowed: status.UNIMPLEMENTED,
  failed_precondition: status.FAILED_PRECONDITION,
  unauthenticated: status.UNAUTHENTICATED,
  payload_too_large: status.RESOURCE_EXHAUSTED,
  unsupported_media_type: status.INVALID_ARGUMENT,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

export function grpcCodeOf(e: QuiverError): status {
  return CODE_OF_KIND[e.kind];
}

/** Status names by code, for metrics labels. */
export const CODE_NAMES: readonly string[] = Object.entries(status)
  .filter(([, v]) => typeof v === "number")
  .sort((a, b) => (a[1] as number) - (b[1] as number))
  .map(([k]) => k);

/** Longest status message sent (characters): it travels in an HTTP/2 trailer, and messages quote client input. */
const MAX_DETAILS = 1024;
/** Longest `x-quiver-error-path` trailer (characters). */
const MAX_PATH = 256;

/**
 * A QuiverError as a gRPC status: the message already names the field path;
 * the trailers repeat Quiver's stable code and the path for programs. Both
 * are bounded: a message quoting a 100 KB name made a trailer block over
 * what HTTP/2 peers accept, and the client reset the connection, failing
 * every other call on it. The path trailer is a plain header value, so
 * anything outside printable ASCII in it is escaped.
 */
export function toServiceError(e: QuiverError): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set("x-quiver-error-code", e.code);
  if (e.path !== undefined) metadata.set("x-quiver-error-path", clipText(headerSafe(e.path), MAX_PATH, "..."));
  if (e.retryable) metadata.set("x-quiver-retryable", "true");
  // Well-formed whatever the message quotes: grpc-js percent-encodes the details with encodeURI, which throws on
  // a lone surrogate (a client's "\ud800" quoted back), and the throw ended the process.
  return { code: grpcCodeOf(e), details: clipText(e.message, MAX_DETAILS).toWellFormed(), metadata };
}

/** Printable ASCII as it is; every other UTF-16 unit as a `\u` escape with four hex digits (a non-binary metadata value allows nothing else). */
function headerSafe(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
