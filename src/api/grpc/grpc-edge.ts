import { BearerToken } from "../../auth/index.ts";
import type { ViewSample } from "../../serving/index.ts";
import { type GrpcWarmupOptions, type GrpcWarmupReport, warmUpGrpc } from "./warmup.ts";
import { type ChannelOptions, Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { methodNotAllowed } from "../../errors/index.ts";
import type { MetricsRegistry } from "../../ops/metrics.ts";
import type { ShedRecorder } from "../../ops/shed-recorder.ts";
import type { Admission } from "../../resilience/admission.ts";
import type { FeatureServing } from "../../serving/index.ts";
import type { MatchService } from "../../vector/index.ts";
import { type BoundTimers, OverdueWatch, REAL_TIMERS, workBounds } from "../work-bounds.ts";
import { DecodeFailure, GrpcMetrics, Undecoded, unary } from "./call.ts";
import { HeldMessages } from "./held-messages.ts";
import { IncompleteRequests } from "./incomplete-requests.ts";
import { FeastGrpcService } from "./feast-service.ts";
import { HealthService } from "./health-service.ts";
import { QuiverMatchService } from "./match-service.ts";
import { loadProtos, type Protos, SERVICES } from "./protos.ts";
import { GrpcConnections } from "./connections.ts";
import { OpenStreams } from "./open-streams.ts";
import { QuiverGrpcService } from "./quiver-service.ts";
import { PartialMessages } from "./partial-messages.ts";
import { addReflection } from "./reflection.ts";
import { strictReader } from "./strict-reader.ts";
import { writeGuard } from "./write-guard.ts";

export interface GrpcDeps {
  readonly serving: FeatureServing;
  readonly metrics: MetricsRegistry;
  /** Readiness, as /readyz decides it. */
  readonly ready: () => Promise<boolean>;
  readonly limits: GrpcLimits;
  /** When set, write methods require metadata `authorization: Bearer <token>`. */
  readonly adminToken?: string;
  /** Admission control shared with HTTP: lookups, pushes and matches beyond it answer RESOURCE_EXHAUSTED. */
  readonly admission?: Admission;
  /** Counts and notes what admission refuses, with HTTP's refusals (quiver_admission_shed_total, the anomaly buffer). */
  readonly sheds?: ShedRecorder;
  /** Claim matching (quiver.v1 Match); without it Match answers UNIMPLEMENTED. */
  readonly match?: MatchService;
  /** How often health Watch re-checks readiness (default 1000 ms). */
  readonly healthIntervalMs?: number;
  /** The clock and timer work bounds are kept with (../work-bounds.ts); tests may give fake ones. Default: real, unref'd. */
  readonly timers?: BoundTimers;
}

export interface GrpcLimits {
  /** Largest request message accepted (RESOURCE_EXHAUSTED above); the HTTP body limit. */
  readonly maxMessageBytes: number;
  /** Keepalive pings on idle connections: every `keepaliveMs`, dropped if unanswered within `keepaliveTimeoutMs`. */
  readonly keepaliveMs: number;
  readonly keepaliveTimeoutMs: number;
  /** Lookup budget for calls without a deadline (--lookup-timeout-ms); none when absent. */
  readonly lookupTimeoutMs?: number;
  /** How long past its budget a lookup's unfinished work may hold its admission slot (ms; default 1000; ../work-bounds.ts). */
  readonly overdueGraceMs?: number;
  /** How long after its admission any other call's unfinished work (a push, a match) may hold its slot (ms; default 60000). */
  readonly maxWorkMs?: number;
  /** Most bytes of large request messages held before they are read (held-messages.ts; default the larger of 256 MiB and twice `maxMessageBytes`). */
  readonly heldMessageBytes?: number;
  /** A large message whose call is not ended this long after it arrived is dropped (ms; default 5000). */
  readonly unendedMessageMs?: number;
  /** Most bytes of request messages received in part at once, every call's (partial-messages.ts; default the larger of 256 MiB and twice `maxMessageBytes`). */
  readonly partialMessageBytes?: number;
  /** A unary call whose request (message and end of stream) has not arrived this long after its headers is ended DEADLINE_EXCEEDED (incomplete-requests.ts; ms; default 10000). */
  readonly requestWaitMs?: number;
  /**
   * A connection this old (ms, ±10% jitter grpc-js adds) is told to go away (GOAWAY, NO_ERROR): its client opens a
   * new one (through a load balancer, maybe to another pod) for new calls. Absent or 0: connections live for good.
   */
  readonly maxConnectionAgeMs?: number;
  /** How long calls may still run on a connection told to go away before it is closed, and they with it (ms; with maxConnectionAgeMs; absent: for good). */
  readonly maxConnectionAgeGraceMs?: number;
  /** A connection without a call this long is closed (GOAWAY; ms). Absent or 0: never. */
  readonly maxConnectionIdleMs?: number;
  /** A LookupStream quiet this long (no message, nothing running or unsent) is ended UNAVAILABLE (`stream_idle`; open-streams.ts; ms). Absent or 0: never. */
  readonly streamIdleMs?: number;
}

/** How long a unary call's request may take to arrive after its headers (incomplete-requests.ts), unless set. */
export const DEFAULT_REQUEST_WAIT_MS = 10_000;

/** Messages from this size are counted as held (held-messages.ts): a lookup a client normally sends is far smaller. */
const HELD_FROM_BYTES = 64 << 10;

export interface GrpcEdge {
  /** Binds and starts serving; answers the bound port (0 picks a free one). */
  listen(host: string, port: number): Promise<number>;
  /**
   * Graceful shutdown: health turns NOT_SERVING, new calls are refused,
   * in-flight calls finish; after `graceMs` the rest are cancelled.
   */
  drain(graceMs: number): Promise<void>;
  /** Names of every service served, as reflection lists them. */
  readonly services: readonly string[];
  /** Calls to its own port over loopback (api/grpc/warmup.ts); once listening, before clients are sent here. */
  warmUp(samples: readonly ViewSample[], options: GrpcWarmupOptions): Promise<GrpcWarmupReport>;
}

/**
 * The gRPC edge: Feast's ServingService and Python GrpcFeatureServer,
 * quiver.v1.FeatureService, grpc.health.v1 and server reflection, all on the
 * transport-neutral serving layer. Requests are decoded with protobufjs
 * directly and lookups are answered by hand-written encoders (see
 * encode-quiver.ts, encode-feast.ts), skipping proto-loader's per-message
 * object conversion.
 */
export function createGrpcEdge(deps: GrpcDeps, protos: Protos = loadProtos()): GrpcEdge {
  const options: ChannelOptions = {
    "grpc.max_receive_message_length": deps.limits.maxMessageBytes,
    "grpc.max_send_message_length": -1,
    "grpc.keepalive_time_ms": deps.limits.keepaliveMs,
    "grpc.keepalive_timeout_ms": deps.limits.keepaliveTimeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    // Clients may ping as often as every 10 s without being told to calm down.
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    // Calls in flight per connection (clients queue the rest). Unset, one connection held 20,000 half-open calls, or
    // 100 unread answers of 4 MB each (RSS 131 → 517 MB): the answers a client does not read stay in this process.
    "grpc.max_concurrent_streams": 100,
    // grpc-js reads an option that is there as a bound (0: at once); absent is "never".
    ...connectionBounds(deps.limits),
  };
  const metrics = new GrpcMetrics(deps.metrics, deps.sheds);
  const token = deps.adminToken === undefined ? undefined : new BearerToken(deps.adminToken);
  const writeMetrics = {
    feastPush: metrics.method("GrpcFeatureServer/Push"),
    feastWrite: metrics.method("GrpcFeatureServer/WriteToOnlineStore"),
    quiverPush: metrics.method("quiver.v1.FeatureService/Push"),
  };
  const guarded = [
    { path: `/${SERVICES.feastPython}/Push`, count: writeMetrics.feastPush.count },
    { path: `/${SERVICES.feastPython}/WriteToOnlineStore`, count: writeMetrics.feastWrite.count },
    { path: `/${SERVICES.quiver}/Push`, count: writeMetrics.quiverPush.count },
  ];
  // Message bytes received in part, every call's, against one cap (partial-messages.ts); first, as it needs the call
  // grpc-js made. Write methods' tokens are checked as their headers arrive, before the message is read (write-guard.ts).
  const partial = new PartialMessages(deps.limits.partialMessageBytes ?? Math.max(256 << 20, 2 * deps.limits.maxMessageBytes));
  deps.metrics.gauge("quiver_grpc_partial_message_bytes", "Bytes of gRPC request messages received in part (partial-messages.ts); past the cap a call is answered RESOURCE_EXHAUSTED. Should fall back to 0 when idle.", () => [
    { value: partial.inUse },
  ]);
  // Unary calls whose request never arrives are ended at a bound (incomplete-requests.ts); streams, health and reflection
  // are not bounded. After the count (which hands on grpc-js's call), before the guard (which may wrap it).
  const endedIncomplete = deps.metrics.counter(
    "quiver_grpc_incomplete_requests_total",
    "gRPC unary calls ended DEADLINE_EXCEEDED (request_incomplete) because their request (message and end of stream) had not arrived within --grpc-request-wait of their headers.",
    ["method"],
  );
  const incomplete = new IncompleteRequests({
    waitMs: deps.limits.requestWaitMs ?? DEFAULT_REQUEST_WAIT_MS,
    paths: unaryPaths(protos, [SERVICES.feast, SERVICES.feastPython, SERVICES.quiver]),
    timers: deps.timers ?? REAL_TIMERS,
    onEnded: (path) => endedIncomplete.labels(path.slice(1)).inc(),
  });
  deps.metrics.gauge("quiver_grpc_incomplete_requests", "gRPC unary calls whose request (message and end of stream) is still arriving, over a turn after their headers; ended at --grpc-request-wait. Should fall back to 0 when idle.", () => [
    { value: incomplete.waitingCount },
  ]);
  const interceptors = token === undefined ? [partial.interceptor, incomplete.interceptor] : [partial.interceptor, incomplete.interceptor, writeGuard(token, guarded)];
  const server = new Server({ ...options, interceptors });
  let selfAddress: string | undefined;
  const info = {};
  const bounds = workBounds(deps.limits.overdueGraceMs, deps.limits.maxWorkMs);
  // Every call's bound in one watch: one timer for the edge, not one per call that waits on storage.
  const watch = new OverdueWatch(deps.timers);
  const read = { admission: deps.admission, defaultBudgetMs: deps.limits.lookupTimeoutMs, lookup: true, bounds, watch };
  const write = { admission: deps.admission, bounds, watch };
  const held = new HeldMessages({
    capBytes: deps.limits.heldMessageBytes ?? Math.max(256 << 20, 2 * deps.limits.maxMessageBytes),
    unendedMs: deps.limits.unendedMessageMs ?? 5000,
    fromBytes: HELD_FROM_BYTES,
  });
  const codec = codecs(protos, held);

  const feast = new FeastGrpcService(deps.serving, protos.type("feast.types.Value"));
  const getOnline = (method: string) => unary(metrics.method(method), feast.getOnlineFeatures.bind(feast), read);
  server.addService(codec(SERVICES.feast, new Set(["GetOnlineFeatures"])), {
    GetFeastServingInfo: unary(metrics.method("feast.serving.ServingService/GetFeastServingInfo"), () => feast.info(), info),
    GetOnlineFeatures: getOnline("feast.serving.ServingService/GetOnlineFeatures"),
  });
  server.addService(codec(SERVICES.feastPython, new Set(["GetOnlineFeatures"])), {
    Push: unary(writeMetrics.feastPush, feast.push.bind(feast), write),
    WriteToOnlineStore: unary(writeMetrics.feastWrite, feast.writeToOnlineStore.bind(feast), write),
    GetOnlineFeatures: getOnline("GrpcFeatureServer/GetOnlineFeatures"),
  });

  const quiver = new QuiverGrpcService(deps.serving, deps.limits.lookupTimeoutMs);
  const streamMetrics = metrics.method("quiver.v1.FeatureService/LookupStream");
  const endedStreams = deps.metrics.counter(
    "quiver_grpc_streams_ended_total",
    "LookupStreams the server ended (UNAVAILABLE, after answering what they had read), by reason: idle (quiet for --grpc-stream-idle), connection_closing (their connection was told to go away: --grpc-max-connection-age), shutdown.",
    ["reason"],
  );
  const streams = new OpenStreams({
    idleMs: deps.limits.streamIdleMs ?? 0,
    checkMs: streamCheckMs(deps.limits),
    timers: deps.timers ?? REAL_TIMERS,
    onEnded: (reason) => endedStreams.labels(reason).inc(),
  });
  deps.metrics.gauge("quiver_grpc_open_streams", "LookupStreams open now.", () => [{ value: streams.size }]);
  const accepted = deps.metrics.counter("quiver_grpc_connections_accepted_total", "gRPC (HTTP/2) connections accepted; with --grpc-max-connection-age a long-lived client's is replaced every age.").labels();
  const connections = new GrpcConnections(() => accepted.inc());
  deps.metrics.gauge("quiver_grpc_connections", "gRPC (HTTP/2) connections open now (read from grpc-js's server; absent if it cannot be).", () => {
    const open = connections.open;
    return open === undefined ? [] : [{ value: open }];
  });
  const match = deps.match ? new QuiverMatchService(deps.serving, deps.match) : undefined;
  server.addService(codec(SERVICES.quiver, new Set(["Lookup", "LookupStream"])), {
    Lookup: unary(metrics.method("quiver.v1.FeatureService/Lookup"), quiver.lookup.bind(quiver), read),
    LookupStream: (call: Parameters<QuiverGrpcService["lookupStream"]>[0]) => quiver.lookupStream(call, streamMetrics, deps.admission, bounds, watch, streams),
    Push: unary(writeMetrics.quiverPush, quiver.push.bind(quiver), write),
    Match: unary(
      metrics.method("quiver.v1.FeatureService/Match"),
      match
        ? match.run.bind(match)
        : () => {
            throw methodNotAllowed("claim matching is not configured on this server");
          },
      // Not bounded by a lookup's budget: a match does not read by it (a text query's embedder, the feature join).
      write,
    ),
  } as UntypedServiceImplementation);

  // Health answers for every service served, reflection's too (a Check for it was NOT_FOUND).
  const services = [SERVICES.feast, SERVICES.feastPython, SERVICES.quiver, SERVICES.health, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
  const health = new HealthService({ services, ready: deps.ready, watchIntervalMs: deps.healthIntervalMs ?? 1000 });
  server.addService(codec(SERVICES.health, new Set(), "now"), { Check: health.check, Watch: health.watch } as UntypedServiceImplementation);
  addReflection(server, protos.definition);

  return {
    services,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.bindAsync(`${host.includes(":") ? `[${host}]` : host}:${port}`, ServerCredentials.createInsecure(), (error, bound) => {
          if (error) return reject(error);
          connections.follow(server);
          // Loopback for the warm-up: a wildcard bind answers there too.
          selfAddress = `${host === "0.0.0.0" || host === "::" || host === "" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host}:${bound}`;
          resolve(bound);
        });
      }),
    warmUp: (samples, o) => {
      if (selfAddress === undefined) return Promise.reject(new Error("gRPC warm-up before listen"));
      return warmUpGrpc(selfAddress, protos.definition, samples, o);
    },
    drain: (graceMs) =>
      new Promise((resolve) => {
        health.drain();
        health.closeWatches();
        // Open LookupStreams end once what they read is answered: an idle one held the drain for all of graceMs.
        streams.drain();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/**
 * A service definition with Quiver's codecs: requests decoded by protobufjs
 * into message objects once their call is admitted (an Undecoded the handler
 * decodes, call.ts; a unary call's large ones counted in `held`, a stream's
 * not: its flow control holds back all but the one it reads; a decode failure
 * becomes a DecodeFailure it answers INVALID_ARGUMENT), or on arrival
 * (`decode: "now"`: health, never shed, tiny messages); responses encoded by
 * protobufjs from plain objects, or passed through when the handler already
 * wrote bytes (`raw`).
 */
function codecs(protos: Protos, held: HeldMessages) {
  return (serviceName: string, raw: ReadonlySet<string>, decode: "admitted" | "now" = "admitted"): ServiceDefinition => {
    const base = protos.service(serviceName);
    const service = protos.root.lookupService(serviceName);
    const out: Record<string, unknown> = {};
    for (const [method, def] of Object.entries(base)) {
      const m = service.methods[method];
      if (m === undefined) throw new Error(`proto method ${serviceName}/${method} is not loaded`);
      const reqType = typeIn(protos, service, m.requestType);
      const resType = typeIn(protos, service, m.responseType);
      out[method] = {
        ...def,
        requestDeserialize: decode === "now" ? decodeNow(reqType) : def.requestStream ? (buf: Buffer) => new Undecoded(buf, reqType) : (buf: Buffer) => held.take(buf, reqType),
        responseSerialize: raw.has(method)
          ? (bytes: Uint8Array) => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
          : (value: object) => {
              const bytes = resType.encode(value).finish();
              return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
            },
      };
    }
    return out as ServiceDefinition;
  };
}

/** grpc-js's options for the connection bounds that are set (an option present with 0 would bound at once). */
function connectionBounds(limits: GrpcLimits): ChannelOptions {
  const out: ChannelOptions = {};
  const age = limits.maxConnectionAgeMs ?? 0;
  if (age > 0) {
    out["grpc.max_connection_age_ms"] = age;
    if (limits.maxConnectionAgeGraceMs !== undefined) out["grpc.max_connection_age_grace_ms"] = limits.maxConnectionAgeGraceMs;
  }
  const idle = limits.maxConnectionIdleMs ?? 0;
  if (idle > 0) out["grpc.max_connection_idle_ms"] = idle;
  return out;
}

/**
 * How often open LookupStreams are looked at (open-streams.ts): every second, or a quarter of the stream idle bound
 * or of the age's grace when shorter, so a stream on a connection told to go away is ended well within the grace.
 */
function streamCheckMs(limits: GrpcLimits): number {
  let ms = 1000;
  if ((limits.streamIdleMs ?? 0) > 0) ms = Math.min(ms, limits.streamIdleMs! / 4);
  if ((limits.maxConnectionAgeMs ?? 0) > 0 && limits.maxConnectionAgeGraceMs !== undefined) ms = Math.min(ms, limits.maxConnectionAgeGraceMs / 4);
  return Math.max(10, ms);
}

/** The paths of the unary methods of `services` (a stream's request is long-lived by design). */
function unaryPaths(protos: Protos, services: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const name of services) {
    for (const def of Object.values(protos.service(name))) if (!def.requestStream && !def.responseStream) out.add(def.path);
  }
  return out;
}

/** Decodes a request on arrival; bytes that are not the message become a DecodeFailure. */
function decodeNow(type: protobuf.Type) {
  return (buf: Buffer): unknown => {
    try {
      return type.decode(strictReader(buf));
    } catch (e) {
      return new DecodeFailure((e as Error).message);
    }
  };
}

/**
 * A method's message type, looked up in the service's own package first.
 * protobufjs's resolver prefers a root-level type of the same short name (Feast's
 * package-less PushRequest would shadow quiver.v1.PushRequest), so resolve by hand.
 */
function typeIn(protos: Protos, service: protobuf.Service, name: string): protobuf.Type {
  if (name.startsWith(".")) return protos.root.lookupType(name);
  const pkg = service.parent && service.parent !== protos.root ? service.parent.fullName : "";
  if (pkg !== "") {
    const local = protos.root.lookup(`${pkg}.${name}`);
    if (local instanceof protobuf.Type) return local;
  }
  return protos.root.lookupType(`.${name}`);
}
