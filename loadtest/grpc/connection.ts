import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants, type OutgoingHttpHeaders } from "node:http2";
// grpc-js's status enum alone (its numeric enum maps codes back to names): the generator loads none of grpc-js's client.
import { Status } from "@grpc/grpc-js/build/src/constants.js";
import type { LoadConnection } from "../engine/load-connection.ts";
import { Reconnector } from "../engine/reconnect.ts";
import type { ConnectionListener } from "../http1/connection.ts";

/** The failure kind of a non-OK status. */
export function grpcFailureKind(code: number): string {
  return `grpc_${Status[code] ?? code}`;
}

/** No status seen (yet). */
const NO_STATUS = -1;

/**
 * One gRPC channel: its own HTTP/2 session (so N connections are N sockets)
 * with at most one unary call in flight, so the engine's open and closed
 * loops work as over HTTP/1. Requests are prebuilt protobuf messages; a call
 * is one `node:http2` stream carrying them as gRPC frames them (a flag byte,
 * a 4-byte length, the message), with the status read from the trailers (or
 * from the headers of a trailers-only answer). A non-OK status is a failure
 * named `grpc_<CODE>`; the session stays, so the connection is ready again at
 * once, as it is after a timeout (the stream is cancelled). A session that
 * ends (the server closed it, a protocol error) fails its call as `reset` and
 * is opened again, backing off while it cannot connect.
 *
 * Until 12-06 this was grpc-js's `Client`, which costs the generator far more
 * per call than the server being measured: against a bare grpc-js server on
 * the other core, one generator core drove 4.9k calls/s closed loop through
 * grpc-js and 20-22k through `node:http2` (16 channels; AMD host, the same
 * minutes), and open loop at 4k calls/s grpc-js's own stalls read as a p99
 * of 15 ms against that bare server. Before 12-05 a refusal was not handed
 * back: each RESOURCE_EXHAUSTED took a connection out of the run for good.
 */
export class GrpcConnection implements LoadConnection {
  private session: ClientHttp2Session | null = null;
  private stream: ClientHttp2Stream | null = null;
  /** Number of the call in flight: a cancelled or failed call's late events name an older one. */
  private seq = 0;
  private status = NO_STATUS;
  private stopped = false;
  private readonly reconnector = new Reconnector({
    stopped: () => this.stopped,
    connected: () => this.session !== null,
    connect: () => this.connect(),
    reconnected: () => {
      if (this.stopped) this.stop();
      else if (this.owesReady) {
        this.owesReady = false;
        this.listener.onReady(this);
      }
    },
    failed: () => this.listener.onFailure(this, "connect", false),
  });
  /** A failure was reported with no ready after it: the next session's connect owes the engine one (never two). */
  private owesReady = false;
  /** The request as a gRPC frame, reused call after call (one in flight; made anew when the length changes or a call is cancelled). */
  private frame: Buffer = Buffer.alloc(0);
  /** Request headers per template (fixed: gRPC request headers do not vary per call). */
  private readonly headers: readonly OutgoingHttpHeaders[];
  busy = false;
  intendedAt = 0;
  sentAt = 0;
  idleAt = 0;
  template = 0;
  readonly buffers: (Uint8Array | undefined)[] = [];

  constructor(
    readonly id: number,
    private readonly hostname: string,
    private readonly port: number,
    private readonly listener: ConnectionListener<GrpcConnection>,
    /** Method path per template index, e.g. "/quiver.v1.FeatureService/Lookup". */
    paths: readonly string[],
  ) {
    this.headers = paths.map((path) => ({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" }));
  }

  /** Opens the session; resolves once connected (or rejects on failure). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const session = connect(`http://${this.hostname}:${this.port}`);
      const failed = (e: unknown) => {
        session.destroy();
        reject(e instanceof Error ? e : new Error(String(e)));
      };
      session.once("error", failed);
      session.once("connect", () => {
        session.off("error", failed);
        // Later errors end the session: its close fails the call in flight and reconnects.
        session.on("error", () => {});
        session.once("close", () => this.onSessionClose(session));
        this.session = session;
        resolve();
      });
    });
  }

  send(bytes: Uint8Array, now: number): void {
    this.sentAt = now;
    this.busy = true;
    const session = this.session;
    if (session === null || session.closed || session.destroyed) {
      this.busy = false;
      this.lost();
      this.listener.onFailure(this, "reset", true);
      return;
    }
    const seq = ++this.seq;
    this.status = NO_STATUS;
    const n = bytes.byteLength;
    if (this.frame.length !== n + 5) this.frame = Buffer.allocUnsafe(n + 5);
    const frame = this.frame;
    frame[0] = 0;
    frame.writeUInt32BE(n, 1);
    frame.set(bytes, 5);
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(this.headers[this.template]!);
    } catch {
      this.busy = false;
      this.lost();
      this.listener.onFailure(this, "reset", true);
      return;
    }
    this.stream = stream;
    const onStatus = (h: Record<string, unknown>) => {
      const s = h["grpc-status"];
      if (s !== undefined && seq === this.seq) this.status = Number(s);
    };
    stream.on("response", onStatus);
    stream.on("trailers", onStatus);
    // The answer's bytes are not decoded: reading them keeps HTTP/2 flow control moving.
    stream.on("data", ignore);
    stream.on("error", ignore);
    stream.on("close", () => this.onCallClose(seq));
    stream.end(frame);
  }

  private onCallClose(seq: number): void {
    if (!this.busy || seq !== this.seq) return; // aborted (timeout) or stopped
    this.busy = false;
    this.stream = null;
    const code = this.status;
    if (code === 0) {
      this.listener.onResponse(this, 200, true);
      return;
    }
    // A stream reset before any status (the server refused the stream, or went away mid-call): not a gRPC answer.
    this.listener.onFailure(this, code === NO_STATUS ? "reset" : grpcFailureKind(code), true);
    this.readyAgain();
  }

  /** After a failed or cancelled call: ready at once on a live session, else once a new one connects (never both). */
  private readyAgain(): void {
    const s = this.session;
    if (s !== null && !s.closed && !s.destroyed) {
      this.listener.onReady(this);
      return;
    }
    // Its streams close before the session does: the session's own close (ignored below) comes later.
    this.lost();
  }

  /** The session is gone with a failure reported and no ready: a new one connects, then tells the engine. */
  private lost(): void {
    const s = this.session;
    this.session = null;
    this.stream = null;
    s?.destroy();
    this.owesReady = true;
    this.reconnector.schedule();
  }

  abort(kind: string): void {
    if (!this.busy) return;
    this.busy = false;
    this.seq++;
    this.cancel();
    this.listener.onFailure(this, kind, true);
    this.readyAgain();
  }

  stop(): void {
    this.stopped = true;
    this.busy = false;
    this.seq++;
    this.cancel();
    const s = this.session;
    this.session = null;
    s?.destroy();
  }

  private cancel(): void {
    const s = this.stream;
    this.stream = null;
    if (s !== null && !s.closed) {
      s.close(constants.NGHTTP2_CANCEL);
      // A stream cancelled before its request went out (a peer that stopped reading) may still hold the
      // frame in its write queue: the next call writes into a buffer of its own.
      this.frame = Buffer.alloc(0);
    }
  }

  private onSessionClose(session: ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = null;
    this.stream = null;
    const wasBusy = this.busy;
    this.busy = false;
    this.seq++;
    // Idle, it is already among the engine's free connections: the new session connects without a ready.
    if (wasBusy) this.owesReady = true;
    this.reconnector.schedule();
    if (wasBusy) this.listener.onFailure(this, "reset", true);
  }
}

function ignore(): void {}
