import type { Metadata, StatusObject } from "@grpc/grpc-js";
import { unavailable } from "../../errors/index.ts";
import { type BoundTimers, REAL_TIMERS } from "../work-bounds.ts";
import { toServiceError } from "./grpc-status.ts";

/** Why the server ended an open LookupStream (the `reason` of quiver_grpc_streams_ended_total). */
export type StreamEndReason = "shutdown" | "connection_closing" | "idle";

/**
 * The HTTP/2 connection a stream runs on, as read here: `closed` turns true
 * once the server began closing it (a GOAWAY sent: --grpc-max-connection-age)
 * or its client did (the client's GOAWAY).
 */
export interface StreamConnection {
  readonly closed: boolean;
}

/** An open LookupStream, as the server's set of them sees it (quiver-service.ts makes them). */
export interface OpenStream {
  /** Its connection, when grpc-js's call lets it be read (`connectionOf`). */
  readonly connection: StreamConnection | undefined;
  /**
   * When it last had work (the timers' clock, ms): a message read, a lookup
   * answered, its answers sent on; undefined while a lookup runs or answers
   * wait to go out (a client not reading its answers is not idle, it is slow).
   */
  quietSince(): number | undefined;
  /**
   * Reads no more messages and ends once what it read is answered, with the
   * status `reason` gives (UNAVAILABLE: open the stream again). False when
   * its client had half-closed it already (it then ends OK once answered).
   */
  stop(reason: StreamEndReason): boolean;
}

export interface OpenStreamsOptions {
  /** A stream quiet this long is ended (ms; --grpc-stream-idle); 0 or absent = never. */
  readonly idleMs?: number;
  /** How often open streams are looked at, for quiet ones and ones whose connection is closing (ms; default 1000). */
  readonly checkMs?: number;
  /** The clock and timer the checks run on (a test's fake drives them). */
  readonly timers?: BoundTimers;
  /** Told of each stream the server ends, with why. */
  readonly onEnded?: (reason: StreamEndReason) => void;
  /** Told once if grpc-js's stream call is not the one read here (streams are then not ended when their connection closes). */
  readonly warn?: (message: string) => void;
}

/**
 * The LookupStreams a server has open. Each is ended (UNAVAILABLE, trailer
 * `x-quiver-error-code`, retryable; the lookups it read are answered first):
 * - `shutdown`: at the drain. Before, an idle open stream held the gRPC drain
 *   for its whole grace (10 s on SIGTERM) and was then dropped with the
 *   connection ("14 UNAVAILABLE: Connection dropped").
 * - `idle`: quiet (no message, nothing running or unsent) for `idleMs`. Before,
 *   a stream that sent nothing was held for good, 100 per connection,
 *   connections unbounded. A stream that keeps sending is never ended so.
 * - `connection_closing`: its connection was told to go away (max connection
 *   age). Left alone, the stream ran on until the age's grace cut the
 *   connection, its lookups in flight lost, and it stayed on the old pod until
 *   then; ended here, at the next check after the GOAWAY, its client reopens
 *   it on its new connection.
 * One timer for all of them, every `checkMs` while any is open (none while
 * none is); a stream pays a set entry and, on going quiet, a clock read.
 */
export class OpenStreams {
  private readonly open = new Set<OpenStream>();
  private draining = false;
  private timer: unknown;
  private warned = false;
  private readonly idleMs: number;
  private readonly checkMs: number;
  private readonly timers: BoundTimers;
  private readonly statuses: Readonly<Record<StreamEndReason, StatusObject>>;

  constructor(private readonly o: OpenStreamsOptions = {}) {
    this.idleMs = o.idleMs ?? 0;
    this.checkMs = o.checkMs ?? 1000;
    if (!(this.idleMs >= 0) || !(this.checkMs > 0)) throw new Error(`open streams: idleMs must be 0 or more and checkMs positive, got ${this.idleMs} and ${this.checkMs}`);
    this.timers = o.timers ?? REAL_TIMERS;
    this.statuses = {
      shutdown: statusOf("the server is shutting down; open the stream again", "shutting_down"),
      connection_closing: statusOf(
        "the connection is closing (the server's --grpc-max-connection-age, or its client's GOAWAY): the lookups read were answered; open the stream again, on a new connection, and send again any lookup without an answer",
        "connection_closing",
      ),
      idle: statusOf(
        `the stream was idle for ${this.idleMs} ms, the server's bound (--grpc-stream-idle): open it again when there is a lookup to send`,
        "stream_idle",
      ),
    };
  }

  /** The timers' clock (ms), for a stream's `quietSince`. */
  now(): number {
    return this.timers.now();
  }

  /** The status a stream ended for `reason` answers. */
  statusFor(reason: StreamEndReason): StatusObject {
    return this.statuses[reason];
  }

  /**
   * The connection of a LookupStream's call: grpc-js 1.14's call keeps the
   * call it runs (`call`, the base call when no interceptor wraps the method)
   * and that its HTTP/2 stream (`stream`), whose `session` is Node's public
   * Http2Session. Checked on every stream (a property read); a grpc-js whose
   * call differs is said once, and its streams are left to the age's grace.
   */
  connectionOf(call: unknown): StreamConnection | undefined {
    const connection = connectionOf(call);
    if (connection !== undefined) return connection;
    if (!this.warned) {
      this.warned = true;
      (this.o.warn ?? console.warn)(
        "quiver: gRPC: this @grpc/grpc-js's stream call is not the one open-streams.ts reads (1.14's call.stream.session); LookupStreams are not ended when their connection is told to go away (--grpc-max-connection-age): they run until its grace cuts the connection",
      );
    }
    return undefined;
  }

  /**
   * Keeps a stream; once the drain has begun, stops it at once: a stream
   * whose handler runs after drain() (its headers came before the GOAWAY, and
   * an interceptor ran first) was never told, and held the drain for its
   * whole grace.
   */
  add(stream: OpenStream): void {
    if (this.draining) {
      this.end(stream, "shutdown");
      return;
    }
    this.open.add(stream);
    if (this.timer === undefined) this.arm();
  }

  forget(stream: OpenStream): void {
    this.open.delete(stream);
    if (this.open.size === 0) this.disarm();
  }

  get size(): number {
    return this.open.size;
  }

  /** Ends every open stream once its read lookups are answered. */
  drain(): void {
    this.draining = true;
    this.disarm();
    for (const stream of this.open) this.end(stream, "shutdown");
  }

  private end(stream: OpenStream, reason: StreamEndReason): void {
    this.forget(stream);
    if (stream.stop(reason)) this.o.onEnded?.(reason);
  }

  private arm(): void {
    this.timer = this.timers.set(this.timers.now() + this.checkMs, this.check);
  }

  /** No stream open: no timer armed (an idle edge arms none). */
  private disarm(): void {
    if (this.timer === undefined) return;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /** Ends the streams whose connection is closing or that have been quiet for idleMs; re-arms while any is open. */
  private readonly check = (): void => {
    this.timer = undefined;
    const now = this.timers.now();
    const idleMs = this.idleMs;
    for (const stream of this.open) {
      if (stream.connection?.closed === true) {
        this.end(stream, "connection_closing");
        continue;
      }
      if (idleMs === 0) continue;
      const quiet = stream.quietSince();
      if (quiet !== undefined && now - quiet >= idleMs) this.end(stream, "idle");
    }
    if (this.open.size > 0 && !this.draining) this.arm();
  };
}

/**
 * The connection of a stream call grpc-js (1.14) made (`ServerDuplexStreamImpl`, `ServerWritableStreamImpl`): its
 * `call` (the base call when no interceptor wraps the method), that call's HTTP/2 `stream`, and the stream's public
 * `session`. Undefined when grpc-js's call differs.
 */
export function connectionOf(call: unknown): StreamConnection | undefined {
  const session = (call as { call?: { stream?: { session?: Partial<StreamConnection> } } } | null)?.call?.stream?.session;
  return typeof session?.closed === "boolean" ? (session as StreamConnection) : undefined;
}

function statusOf(message: string, code: string): StatusObject {
  const e = toServiceError(unavailable(message, undefined, code));
  return { code: e.code!, details: e.details!, metadata: e.metadata as Metadata };
}
