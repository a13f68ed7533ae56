import http2 from "node:http2";
import type { Metadata, ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor, StatusObject } from "@grpc/grpc-js";
import { deadlineExceeded } from "../../errors/index.ts";
import type { BoundTimers } from "../work-bounds.ts";
import { toServiceError } from "./grpc-status.ts";

export interface IncompleteRequestsOptions {
  /** A unary call whose request (its message and the end of its stream) has not arrived this long after its headers is ended (ms). */
  readonly waitMs: number;
  /** The methods bounded (`/package.Service/Method`): unary ones; streams, health and reflection are left alone. */
  readonly paths: ReadonlySet<string>;
  /** The clock and timer the bound is kept with (a test's fake drives the sweep). */
  readonly timers: BoundTimers;
  /** Told of each call ended here, by its method path. */
  readonly onEnded?: (path: string) => void;
  /** Told once if grpc-js's call is not the one read here (then nothing is bounded). */
  readonly warn?: (message: string) => void;
}

/**
 * Unary calls whose request never (fully) arrives, bounded. grpc-js runs a
 * unary handler once the call's message and its end of stream have arrived,
 * and until then keeps the call for as long as its client keeps the stream
 * open: a client that sent headers and never a DATA frame held ≈ 4.7 KB per
 * call for good (5,000 calls = +24 MB; 100 per connection, connections not
 * counted), a slowloris. Here such a call is answered DEADLINE_EXCEEDED
 * (`request_incomplete`, naming the bound) `waitMs` after its headers and its
 * stream reset (NO_ERROR: the response is complete, stop sending), so grpc-js
 * and the HTTP/2 session let it go; a stream the server already answered (the
 * client's own, shorter deadline, a refused token) and its client keeps open
 * is reset alike.
 *
 * Cost on the normal path, where the message and the end of stream arrive in
 * the same read as the headers: a push of the call onto an array the edge
 * reuses; one setImmediate per event-loop turn (not per call) looks at the
 * turn's new calls and forgets those whose request arrived. Only a call still
 * waiting then pays: a map entry, two listeners, and one timer for the edge
 * (armed at the soonest bound, re-armed as it fires; none while nothing waits).
 *
 * This reads grpc-js's (1.14) server call: `stream`, `receivedHalfClose`,
 * `cancelled` and `sendStatus`, on the call the interceptor is given (the one
 * grpc-js made: place it before interceptors that wrap calls).
 */
export class IncompleteRequests {
  readonly interceptor: ServerInterceptor;
  /** Calls started this turn, not yet looked at (reused: no allocation per call). */
  private fresh: BaseCall[] = [];
  private freshPaths: string[] = [];
  private settling = false;
  /** Calls still waiting for their request, in the order they started (so by bound). */
  private readonly waiting = new Map<CallStream, Waiting>();
  private timer: unknown;
  /** A stream's request arrived whole, or the stream closed: its call no longer waits (a listener: `this` is the stream). */
  private readonly forget: (this: CallStream) => void;
  private readonly status: StatusObject;
  private ended = 0;

  constructor(private readonly o: IncompleteRequestsOptions) {
    if (!(Number.isFinite(o.waitMs) && o.waitMs > 0)) throw new Error(`incomplete requests: waitMs must be a positive number of ms, got ${o.waitMs}`);
    const e = toServiceError(
      deadlineExceeded(
        `request_incomplete: the call's request (its message and end of stream) did not arrive within ${o.waitMs} ms of its headers, the server's bound (--grpc-request-wait); send the request whole`,
        undefined,
        "request_incomplete",
      ),
    );
    this.status = { code: e.code!, details: e.details!, metadata: e.metadata as Metadata };
    const waiting = this.waiting;
    this.forget = function forget(this: CallStream): void {
      waiting.delete(this);
    };
    let usable: boolean | undefined;
    this.interceptor = (method, call: ServerInterceptingCallInterface): ServerInterceptingCall => {
      if (o.paths.has(method.path)) {
        if (usable === undefined) {
          usable = callAsExpected(call);
          if (!usable) {
            (o.warn ?? console.warn)(
              "quiver: gRPC: this @grpc/grpc-js's server call is not the one incomplete-requests.ts reads (1.14's); unary calls whose request never arrives are not bounded",
            );
          }
        }
        if (usable) {
          this.fresh.push(call as unknown as BaseCall);
          this.freshPaths.push(method.path);
          if (!this.settling) {
            this.settling = true;
            setImmediate(this.settle);
          }
        }
      }
      return call as ServerInterceptingCall;
    };
  }

  /** Calls waiting for their request now (started over a turn ago, request not whole, stream open). */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Calls ended here so far. */
  get endedCount(): number {
    return this.ended;
  }

  /** After the turn its calls started in: a call whose request has arrived, or that is gone, is forgotten; the rest wait. */
  private readonly settle = (): void => {
    this.settling = false;
    const calls = this.fresh;
    const paths = this.freshPaths;
    let at: number | undefined;
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i]!;
      const stream = call.stream;
      if (call.receivedHalfClose || stream.closed || stream.destroyed) continue;
      at ??= this.o.timers.now() + this.o.waitMs;
      this.waiting.set(stream, { call, path: paths[i]!, at });
      stream.on("end", this.forget);
      stream.on("close", this.forget);
    }
    calls.length = 0;
    paths.length = 0;
    if (at !== undefined && this.timer === undefined) this.arm(at);
  };

  private arm(at: number): void {
    this.timer = this.o.timers.set(at, this.sweep);
  }

  /** Ends the calls whose bound has passed; re-arms for the next. */
  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = this.o.timers.now();
    for (const [stream, w] of this.waiting) {
      if (w.at > now) {
        this.arm(w.at);
        return;
      }
      this.waiting.delete(stream);
      stream.removeListener("end", this.forget);
      stream.removeListener("close", this.forget);
      this.end(w);
    }
  };

  private end({ call, path }: Waiting): void {
    const stream = call.stream;
    if (call.receivedHalfClose || stream.closed || stream.destroyed) return;
    if (!call.cancelled) {
      call.sendStatus(this.status);
      this.ended++;
      this.o.onEnded?.(path);
    }
    // Once the answer is queued: RST_STREAM NO_ERROR (RFC 9113 §8.1: the response is complete, stop sending).
    queueMicrotask(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
  }
}

interface Waiting {
  readonly call: BaseCall;
  readonly path: string;
  /** When its bound passes (the timers' clock, ms). */
  readonly at: number;
}

/** grpc-js's BaseServerInterceptingCall, the parts read here (build/src/server-interceptors.js). */
interface BaseCall {
  readonly stream: CallStream;
  readonly receivedHalfClose: boolean;
  readonly cancelled: boolean;
  sendStatus(status: StatusObject): void;
}

interface CallStream {
  readonly closed: boolean;
  readonly destroyed: boolean;
  on(event: "end" | "close", listener: (this: CallStream) => void): unknown;
  removeListener(event: "end" | "close", listener: (this: CallStream) => void): unknown;
  close(code: number): void;
}

/** Is `call` grpc-js 1.14's base server call, as read here? */
function callAsExpected(call: unknown): boolean {
  const c = call as Partial<BaseCall> | null;
  const s = c?.stream as Partial<CallStream> | undefined;
  return (
    typeof c?.receivedHalfClose === "boolean" &&
    typeof c.cancelled === "boolean" &&
    typeof c.sendStatus === "function" &&
    typeof s?.on === "function" &&
    typeof s.removeListener === "function" &&
    typeof s.close === "function" &&
    typeof s.closed === "boolean"
  );
}
