import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { PROTO_DIR, PROTO_FILES } from "../../src/api/grpc/index.ts";

/** The project's protos as a grpc-js client sees them (proto-loader, the standard codec path). */
const definition = loadSync([...PROTO_FILES], { keepCase: true, longs: String, enums: String, defaults: true, arrays: true, oneofs: true, includeDirs: [PROTO_DIR] });
const loaded = grpc.loadPackageDefinition(definition) as unknown as Record<string, unknown>;

type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

function ctorOf(path: string): ClientCtor {
  let at: unknown = loaded;
  for (const part of path.split(".")) at = (at as Record<string, unknown>)[part];
  return at as ClientCtor;
}

export interface Clients {
  readonly feast: grpc.Client;
  readonly feastPython: grpc.Client;
  readonly quiver: grpc.Client;
  readonly health: grpc.Client;
  close(): void;
}

export function connect(address: string, options: grpc.ClientOptions = {}): Clients {
  const creds = grpc.credentials.createInsecure();
  const feast = new (ctorOf("feast.serving.ServingService"))(address, creds, options);
  const feastPython = new (ctorOf("GrpcFeatureServer"))(address, creds, options);
  const quiver = new (ctorOf("quiver.v1.FeatureService"))(address, creds, options);
  const health = new (ctorOf("grpc.health.v1.Health"))(address, creds, options);
  return {
    feast,
    feastPython,
    quiver,
    health,
    close: () => {
      for (const c of [feast, feastPython, quiver, health]) c.close();
    },
  };
}

export interface UnaryOutcome<T> {
  readonly response?: T;
  readonly error?: grpc.ServiceError;
  /** Response headers (initial metadata). */
  readonly headers: Record<string, string>;
}

/** Calls a unary method and answers the response or the error, with the response headers. */
export function unaryCall<T = Record<string, unknown>>(
  client: grpc.Client,
  method: string,
  request: unknown,
  options: { metadata?: Record<string, string>; deadlineMs?: number } = {},
): Promise<UnaryOutcome<T>> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    const fn = (client as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>)[method]!.bind(client);
    const call = fn(request, md, callOptions, (error: grpc.ServiceError | null, response: T) => {
      resolve(error ? { error, headers } : { response, headers });
    });
    call.on("metadata", (m: grpc.Metadata) => {
      for (const [k, v] of Object.entries(m.getMap())) headers[k] = String(v);
    });
  });
}

export { grpc };
