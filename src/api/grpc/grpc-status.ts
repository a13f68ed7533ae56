import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import type { ErrorKind, QuiverError } from "../../errors/index.ts";

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

/**
 * A QuiverError as a gRPC status: the message already names the field path;
 * the trailers repeat Quiver's stable code and the path for programs.
 */
export function toServiceError(e: QuiverError): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set("x-quiver-error-code", e.code);
  if (e.path !== undefined) metadata.set("x-quiver-error-path", e.path);
  if (e.retryable) metadata.set("x-quiver-retryable", "true");
  return { code: grpcCodeOf(e), details: e.message, metadata };
}
