export { createHttpEdge, type HttpEdge, type NativeRoutes } from "./app.ts";
export type { HttpDeps, HttpLimits, TopologyAdmin } from "./deps.ts";
export { drainBound } from "./body.ts";
export { closingConnections } from "./closing.ts";
export { type WarmupOptions, type WarmupReport, warmUp } from "./warmup.ts";
