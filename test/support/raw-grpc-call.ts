import type http2 from "node:http2";

/**
 * Unary gRPC calls over a node:http2 session, written by hand: a test sends
 * whatever part of a request it wants (headers only, a message's frames cut
 * short, a message without its end of stream) and reads how the server ended
 * the call. What grpc-js's client cannot do: it always sends a request whole.
 */

/** A gRPC message frame header declaring `size` bytes, uncompressed. */
export function frameHeader(size: number): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(size, 1);
  return h;
}

export interface CallStatus {
  readonly code: number;
  readonly message: string;
  /** Quiver's error code (trailer `x-quiver-error-code`), when the server sent one. */
  readonly errorCode?: string;
}

export interface OpenCall {
  readonly stream: http2.ClientHttp2Stream;
  /** The call's grpc-status, grpc-message and x-quiver-error-code, from its trailers (or trailers-only headers); code -1 when the stream closed without them. */
  readonly status: Promise<CallStatus>;
  /** The stream's RST code once it has closed (both sides, or reset). */
  readonly closed: Promise<number>;
}

/** Opens a call on `path` and writes `chunks` in order (none: headers only), leaving the stream open unless `end`. */
export function openRawCall(session: http2.ClientHttp2Session, path: string, chunks: readonly Buffer[] = [], headers: http2.OutgoingHttpHeaders = {}, end = false): OpenCall {
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers }, { endStream: false });
  const status = new Promise<CallStatus>((resolve) => {
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] === undefined) return;
      const errorCode = h["x-quiver-error-code"] as string | undefined;
      resolve({ code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")), ...(errorCode !== undefined ? { errorCode } : {}) });
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("close", () => resolve({ code: -1, message: `closed, rst ${stream.rstCode}` }));
  });
  const closed = new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? -1)));
  stream.on("error", () => {});
  stream.resume();
  for (const c of chunks) stream.write(c);
  if (end) stream.end();
  return { stream, status, closed };
}

/** Waits (on the condition; `ms` only caps a broken run) until `cond` holds. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; ) {
    if (await cond()) return true;
    await Bun.sleep(2);
  }
  return cond();
}
