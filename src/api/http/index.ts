export { createHttpEdge, type HttpEdge, type NativeRoutes } from "./app.ts";
export type { HttpDeps, HttpLimits } from "./deps.ts";
