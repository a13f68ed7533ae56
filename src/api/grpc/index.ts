export { createGrpcEdge, type GrpcDeps, type GrpcEdge, type GrpcLimits } from "./grpc-edge.ts";
export { LOADER_OPTIONS, PROTO_DIR, PROTO_FILES, SERVICES } from "./protos.ts";
export type { GrpcWarmupOptions, GrpcWarmupReport } from "./warmup.ts";
