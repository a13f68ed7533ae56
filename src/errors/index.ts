export { type Issue, invalid, invalidAll, QuiverError, unavailable } from "./quiver-error.ts";
