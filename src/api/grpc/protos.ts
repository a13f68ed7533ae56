import { fileURLToPath } from "node:url";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import protobuf from "protobufjs";

/** Where the project's .proto files live (also for clients: k6, loadtest, tests). */
export const PROTO_DIR = fileURLToPath(new URL("./proto/", import.meta.url));

/** Every .proto file the server serves, relative to PROTO_DIR. */
export const PROTO_FILES = [
  "feast/types/Value.proto",
  "feast/serving/ServingService.proto",
  "feast/serving/GrpcServer.proto",
  "quiver/v1/feature_service.proto",
  "grpc/health/v1/health.proto",
] as const;

/** Full names of the services the server registers. */
export const SERVICES = {
  feast: "feast.serving.ServingService",
  feastPython: "GrpcFeatureServer",
  quiver: "quiver.v1.FeatureService",
  health: "grpc.health.v1.Health",
} as const;

/**
 * The loaded schema, twice over: proto-loader's package definition (what
 * grpc-js clients and the reflection service read) and a protobufjs root whose
 * prepared codecs the server uses directly, skipping proto-loader's
 * object-conversion pass on every message.
 */
export interface Protos {
  readonly definition: PackageDefinition;
  readonly root: protobuf.Root;
  type(name: string): protobuf.Type;
  service(name: string): ServiceDefinition;
}

/** Options that make proto-loader's objects look like what the server reads: field names as in the .proto. */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs: [PROTO_DIR] };

export function loadProtos(): Protos {
  const definition = loadSync([...PROTO_FILES], LOADER_OPTIONS);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith("google/protobuf/") ? target : PROTO_DIR + target);
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return {
    definition,
    root,
    type: (name) => root.lookupType(name),
    service: (name) => {
      const def = definition[name];
      // Message and enum entries carry `format`; a service is a map of method definitions.
      if (def === undefined || "format" in def) throw new Error(`proto service ${name} is not loaded`);
      return def as ServiceDefinition;
    },
  };
}
