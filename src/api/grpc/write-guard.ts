import { type ServerInterceptingCallInterface, ServerInterceptingCall, type ServerInterceptor, type status } from "@grpc/grpc-js";
import type { BearerToken } from "../../auth/index.ts";
import { unauthenticated } from "../../errors/index.ts";
import { grpcCodeOf, toServiceError } from "./grpc-status.ts";

/** What the guard needs of a write method: its full path (`/package.Service/Method`) and where its answers are counted. */
export interface GuardedWrite {
  readonly path: string;
  count(code: status): void;
}

/**
 * A server interceptor that checks a write method's `authorization` metadata
 * as the call's headers arrive, before its message is read: a write without
 * the token gets UNAUTHENTICATED and learns nothing of validation, size
 * limits or load. Checked in the handler instead, a tokenless Push took an
 * admission slot and was told RESOURCE_EXHAUSTED, INVALID_ARGUMENT with the
 * decoder's detail, or that its message was over the size limit, as the HTTP
 * edge never tells (it answers 401 before reading the body). Other methods
 * pass through untouched (no wrapper, no cost).
 */
export function writeGuard(token: BearerToken, writes: readonly GuardedWrite[]): ServerInterceptor {
  const byPath = new Map(writes.map((w) => [w.path, w]));
  return (method, call: ServerInterceptingCallInterface): ServerInterceptingCall => {
    const write = byPath.get(method.path);
    // grpc-js chains whatever an interceptor returns; the call itself is the no-op.
    if (write === undefined) return call as ServerInterceptingCall;
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, passOn) {
            const value = metadata.get("authorization")[0];
            if (token.admits(typeof value === "string" ? value : undefined)) {
              passOn(metadata);
              return;
            }
            const error = unauthenticated("write methods need metadata authorization: Bearer <QUIVER_ADMIN_TOKEN>", "(metadata).authorization");
            write.count(grpcCodeOf(error));
            const { code, details, metadata: trailers } = toServiceError(error);
            call.sendStatus({ code: code!, details: details!, ...(trailers !== undefined ? { metadata: trailers } : {}) });
          },
        });
      },
    });
  };
}
