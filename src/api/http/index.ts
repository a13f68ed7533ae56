export { createHttpApp } from "./app.ts";
export type { HttpDeps, HttpLimits } from "./deps.ts";
