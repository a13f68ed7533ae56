import * as grpc from "@grpc/grpc-js";
import type { LoadConnection } from "../engine/load-connection.ts";
import type { ConnectionListener } from "../http1/connection.ts";

const identity = (b: Buffer): Buffer => b;
const CODE_NAMES = Object.entries(grpc.status)
  .filter(([, v]) => typeof v === "number")
  .reduce<string[]>((acc, [k, v]) => {
    acc[v as number] = k;
    return acc;
  }, []);

/**
 * One gRPC channel (its own HTTP/2 connection: a local subchannel pool, so N
 * connections are N sockets) with at most one unary call in flight, so the
 * engine's open and closed loops work as over HTTP/1. Requests are prebuilt
 * protobuf bytes sent with identity (de)serializers: the generator pays for
 * framing, not for encoding. A non-OK status is a failure named `grpc_<CODE>`;
 * the channel stays (grpc-js reconnects it if need be), so the connection is
 * ready again at once, as it is after a timeout (the call is cancelled).
 * Before 12-05 it was not handed back: each refusal (RESOURCE_EXHAUSTED under
 * load shedding) took a connection out of the run for good, and a closed loop
 * of 16 refused in its warm-up answered nothing at all.
 */
export class GrpcConnection implements LoadConnection {
  private client: grpc.Client | null = null;
  private call: grpc.ClientUnaryCall | null = null;
  /** Number of the call in flight. */
  private seq = 0;
  busy = false;
  intendedAt = 0;
  sentAt = 0;
  idleAt = 0;
  template = 0;
  readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly metadata = new grpc.Metadata();

  constructor(
    readonly id: number,
    private readonly hostname: string,
    private readonly port: number,
    private readonly listener: ConnectionListener<GrpcConnection>,
    /** Method path per template index, e.g. "/quiver.v1.FeatureService/Lookup". */
    private readonly paths: readonly string[],
  ) {}

  connect(): Promise<void> {
    const client = new grpc.Client(`${this.hostname}:${this.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    this.client = client;
    return new Promise((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
  }

  send(bytes: Uint8Array, now: number): void {
    this.sentAt = now;
    this.busy = true;
    // A cancelled call's callback still comes (CANCELLED), possibly while the next call is in flight: only the current one counts.
    const seq = ++this.seq;
    const client = this.client;
    if (client === null) {
      this.busy = false;
      this.listener.onFailure(this, "reset", true);
      return;
    }
    const payload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.call = client.makeUnaryRequest(this.paths[this.template]!, identity, identity, payload, this.metadata, {}, (error) => {
      if (!this.busy || seq !== this.seq) return; // aborted (timeout) or stopped
      this.busy = false;
      this.call = null;
      if (error) {
        this.listener.onFailure(this, `grpc_${CODE_NAMES[error.code] ?? error.code}`, true);
        this.listener.onReady(this);
      } else this.listener.onResponse(this, 200, true);
    });
  }

  abort(kind: string): void {
    if (!this.busy) return;
    this.busy = false;
    this.call?.cancel();
    this.call = null;
    this.listener.onFailure(this, kind, true);
    if (this.client !== null) this.listener.onReady(this);
  }

  stop(): void {
    this.busy = false;
    this.call?.cancel();
    this.client?.close();
    this.client = null;
  }
}
