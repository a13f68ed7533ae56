import { connect } from "node:http2";
import type { PackageDefinition } from "@grpc/proto-loader";
import type { CompiledView } from "../../registry/index.ts";
import type { SampledEntity, ViewSample } from "../../serving/index.ts";

/**
 * Start-up warm-up of the gRPC edge: calls the process makes to its own port
 * over loopback before it is ready, so grpc-js's server (JavaScript too), the
 * protobuf decoding and the answer writers are optimised when clients come.
 * Measured at 3,000 quiver.v1 Lookup calls/s against a just-started server,
 * the generator warmed on another server first: first-second p99 110–332 ms
 * with no warm-up, 87–127 ms with the HTTP edge's alone, 8–15 ms with this
 * one too (10,000 calls, five runs; 5,000 left 76–208 ms), 4–10 ms in the
 * seconds after. It cost ~4–5 s of start-up with grpc-js's client, whose
 * half runs in this process too; 2.3–3.1 s with the HTTP/2 client below
 * (12-05, ninth session, server pinned to one core; 1.4 s unpinned). The
 * first second after it measured alike with either client on a noisy host
 * (p99 24–83 ms against 24–177 ms, one run each way disturbed).
 */
export interface GrpcWarmupOptions {
  /** Calls to make (0: none). */
  readonly calls: number;
  /** Calls in flight at once (default 8: more were shed by admission, RESOURCE_EXHAUSTED, at its starting limit). */
  readonly concurrency?: number;
  /** Stops after this long whatever is left (default 15 s). */
  readonly maxMs?: number;
}

export interface GrpcWarmupReport {
  readonly calls: number;
  /** By gRPC status code (0 = OK). */
  readonly byCode: Readonly<Record<string, number>>;
  readonly ms: number;
}

interface MethodDef {
  readonly path: string;
  readonly requestSerialize: (value: unknown) => Buffer;
}

/** A call the warm-up makes, its request serialised once. */
interface WarmupCall {
  readonly path: string;
  /** The request as a gRPC frame. */
  readonly frame: Buffer;
}

/**
 * Makes `o.calls` Lookup and GetOnlineFeatures calls to `address` (the edge's
 * own bound port) over one HTTP/2 session, each request framed once as gRPC
 * frames it (a flag byte, a 4-byte length, the message). The client side runs
 * in this process and on its core, so it is the cheapest one that speaks the
 * protocol: `node:http2` and the status from the trailers, not grpc-js's
 * client. Measured with the client on the other core, 10,000 Lookup calls took
 * 2.8–2.9 s through grpc-js's `Client` and 1.2–1.3 s through this; what is
 * warmed (grpc-js's server, the services, the answer writers) is the same.
 */
export async function warmUpGrpc(address: string, definition: PackageDefinition, samples: readonly ViewSample[], o: GrpcWarmupOptions): Promise<GrpcWarmupReport> {
  const started = performance.now();
  const byCode: Record<string, number> = {};
  const lookup = methodOf(definition, "quiver.v1.FeatureService", "Lookup");
  const feast = methodOf(definition, "feast.serving.ServingService", "GetOnlineFeatures");
  const calls = samples.flatMap((s) => callsFor(s.view, s.entities, lookup, feast));
  if (o.calls <= 0 || calls.length === 0) return { calls: 0, byCode, ms: 0 };
  const maxMs = o.maxMs ?? 15_000;
  const session = connect(`http://${address}`);
  // A session that fails (the port refused, a protocol error) ends every call in flight as UNAVAILABLE below.
  session.on("error", () => {});
  let next = 0;
  let made = 0;
  const one = (c: WarmupCall): Promise<number> =>
    new Promise((resolve) => {
      let code = UNAVAILABLE;
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(code);
      };
      const req = session.request({ ":method": "POST", ":path": c.path, "content-type": "application/grpc", te: "trailers", "grpc-timeout": `${CALL_TIMEOUT_MS}m` });
      const timer = setTimeout(() => {
        code = DEADLINE_EXCEEDED;
        req.close();
        done();
      }, CALL_TIMEOUT_MS);
      // Trailers-only answers (errors) carry the status in the headers; others in the trailers.
      const status = (h: Record<string, unknown>) => {
        if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"]);
      };
      req.on("response", status);
      req.on("trailers", status);
      req.on("data", () => {});
      req.on("end", done);
      req.on("close", done);
      req.on("error", done);
      req.end(c.frame);
    });
  const worker = async (): Promise<void> => {
    while (next < o.calls && performance.now() - started < maxMs && !session.destroyed) {
      const code = await one(calls[next++ % calls.length]!);
      byCode[code] = (byCode[code] ?? 0) + 1;
      made++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 8) }, worker));
  } finally {
    session.close();
  }
  return { calls: made, byCode, ms: Math.round(performance.now() - started) };
}

/** gRPC status codes the client side sets itself. */
const DEADLINE_EXCEEDED = 4;
const UNAVAILABLE = 14;

/** Bound on one warm-up call (ms). */
const CALL_TIMEOUT_MS = 5_000;

/** `message` as gRPC frames it on the wire: uncompressed flag, 4-byte big-endian length, the message. */
function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function methodOf(definition: PackageDefinition, service: string, method: string): MethodDef {
  const def = (definition[service] as Record<string, MethodDef> | undefined)?.[method];
  if (def === undefined) throw new Error(`warm-up: no gRPC method ${service}/${method}`);
  return def;
}

/** Per view: single-entity Quiver lookups most, Feast's GetOnlineFeatures, and a 20-entity Quiver batch. */
function callsFor(view: CompiledView, entities: readonly SampledEntity[], lookup: MethodDef, feast: MethodDef): WarmupCall[] {
  const features = view.features.map((f) => `${view.name}:${f.name}`);
  // quiver.v1: one column per join key; Feast: a Values list per join key (int64 as decimal strings, as proto-loader takes them).
  const columns = (rows: readonly SampledEntity[]) =>
    view.joinKeys.map((k) => (k.type === "int64" ? { name: k.name, int64_values: rows.map((e) => String(e.get(k.name))) } : { name: k.name, string_values: rows.map((e) => String(e.get(k.name))) }));
  const feastEntities = (e: SampledEntity) =>
    Object.fromEntries(view.joinKeys.map((k) => [k.name, { val: [k.type === "int64" ? { int64_val: String(e.get(k.name)) } : { string_val: String(e.get(k.name)) }] }]));
  const out: WarmupCall[] = [];
  entities.forEach((e, i) => {
    out.push({ path: lookup.path, frame: grpcFrame(lookup.requestSerialize({ features, entities: columns([e]) })) });
    if (i % 2 === 1) out.push({ path: feast.path, frame: grpcFrame(feast.requestSerialize({ features: { val: features }, entities: feastEntities(e) })) });
  });
  const batch = Array.from({ length: 20 }, (_, i) => entities[i % entities.length]!);
  out.push({ path: lookup.path, frame: grpcFrame(lookup.requestSerialize({ features, entities: columns(batch) })) });
  return out;
}
