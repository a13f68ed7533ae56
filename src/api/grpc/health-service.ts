import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from "@grpc/grpc-js";
import { invalidArgument, notFound } from "../../errors/index.ts";
import { DecodeFailure } from "./call.ts";
import { toServiceError } from "./grpc-status.ts";
import { connectionOf } from "./open-streams.ts";

/** grpc.health.v1 serving statuses. */
const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

interface HealthRequest {
  readonly service: string;
}

export interface HealthOptions {
  /** Every service name the server answers for ("" stands for the whole server). */
  readonly services: readonly string[];
  /** Readiness: the registry is loaded and storage answers. */
  readonly ready: () => Promise<boolean>;
  /** How often Watch re-checks readiness. */
  readonly watchIntervalMs: number;
}

/**
 * grpc.health.v1.Health: SERVING while ready (the same check as /readyz, given
 * by the wiring), NOT_SERVING when that check fails or the server is draining. Watch
 * sends the current status, then every change.
 */
export class HealthService {
  private draining = false;
  private readonly watchers = new Map<() => void, () => void>();
  private readonly known: ReadonlySet<string>;

  constructor(private readonly options: HealthOptions) {
    this.known = new Set(["", ...options.services]);
  }

  /** From now on every service reports NOT_SERVING (graceful shutdown: balancers move away first). */
  drain(): void {
    this.draining = true;
    for (const wake of this.watchers.keys()) wake();
  }

  private async status(): Promise<number> {
    if (this.draining) return NOT_SERVING;
    try {
      return (await this.options.ready()) ? SERVING : NOT_SERVING;
    } catch {
      return NOT_SERVING;
    }
  }

  readonly check = (call: ServerUnaryCall<HealthRequest | DecodeFailure, unknown>, callback: sendUnaryData<unknown>): void => {
    // Bytes that are no HealthCheckRequest were read as service "" and answered SERVING.
    if (call.request instanceof DecodeFailure) {
      callback(toServiceError(invalidArgument("invalid_message", `the request is not a valid protobuf message: ${call.request.reason}`, { path: "(message)" })));
      return;
    }
    const service = call.request?.service ?? "";
    if (!this.known.has(service)) {
      callback(toServiceError(notFound("unknown_service", `no service "${service}" on this server`, "service")));
      return;
    }
    this.status().then(
      (status) => callback(null, { status }),
      () => callback(null, { status: NOT_SERVING }),
    );
  };

  readonly watch = (call: ServerWritableStream<HealthRequest | DecodeFailure, unknown>): void => {
    if (call.request instanceof DecodeFailure) {
      call.emit("error", toServiceError(invalidArgument("invalid_message", `the request is not a valid protobuf message: ${call.request.reason}`, { path: "(message)" })));
      return;
    }
    const service = call.request?.service ?? "";
    if (!this.known.has(service)) {
      // The protocol: an unknown service is reported (and watched), not an error. Services do not change while the
      // server runs, so nothing more is sent; the stream stays open until the client goes or the server drains.
      call.write({ status: SERVICE_UNKNOWN });
      const wake = () => {};
      this.follow(call, wake, () => this.watchers.delete(wake));
      return;
    }
    let last = -1;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const connection = connectionOf(call);
    const tick = async () => {
      if (stopped) return;
      const status = await this.status();
      if (stopped) return;
      if (status !== last) {
        last = status;
        call.write({ status });
      }
      // Its connection was told to go away (--grpc-max-connection-age): ended as at a drain, at its next look, so it
      // is not cut at the grace (grpc-js's client saw INTERNAL, "Received RST_STREAM with code 0"); its client
      // watches again on its new connection. After the status: a Watch whose handler ran once the GOAWAY was out
      // was ended with none, where the protocol answers the current status first.
      if (connection?.closed === true) {
        this.watchers.get(wake)?.();
        return;
      }
      timer = setTimeout(() => void tick(), this.options.watchIntervalMs);
    };
    const wake = () => {
      clearTimeout(timer);
      void tick();
    };
    // Ended by the drain: the status it ends on is NOT_SERVING, sent here since the tick the drain woke has not run
    // yet (closeWatches follows drain at once): until 12-08 a Watch ended by a shutdown without --shutdown-delay
    // had been told SERVING last, and its client saw only the stream end.
    const beforeEnd = () => {
      if (this.draining && last !== NOT_SERVING) {
        last = NOT_SERVING;
        call.write({ status: NOT_SERVING });
      }
    };
    this.follow(
      call,
      wake,
      () => {
        stopped = true;
        clearTimeout(timer);
        this.watchers.delete(wake);
      },
      beforeEnd,
    );
    void tick();
  };

  /** Registers a Watch stream: `wake` on a change of status; `stop` once its client goes, or `closeWatches` ends it. */
  private follow(call: ServerWritableStream<HealthRequest | DecodeFailure, unknown>, wake: () => void, stop: () => void, beforeEnd?: () => void): void {
    this.watchers.set(wake, () => {
      stop();
      beforeEnd?.();
      call.end();
    });
    call.on("cancelled", stop);
    call.on("close", stop);
    call.on("error", stop);
  }

  /** Ends every Watch stream, so a draining server is not held open by watchers. */
  closeWatches(): void {
    for (const end of [...this.watchers.values()]) end();
  }
}
