export { BearerToken } from "./bearer-token.ts";
