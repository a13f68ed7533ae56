import { BearerToken } from "../../auth/index.ts";
import { unauthenticated } from "../../errors/index.ts";

/**
 * A check that a request's Authorization carries the admin token (401 naming
 * the header otherwise), for the routes `what` names ("writes", "admin
 * routes"); undefined when no token is configured (nothing to check).
 */
export function bearerGuard(token: string | undefined, what: string): ((req: Request) => void) | undefined {
  if (token === undefined) return undefined;
  const expected = new BearerToken(token);
  const message = `${what} need Authorization: Bearer <QUIVER_ADMIN_TOKEN>`;
  return (req) => {
    if (!expected.admits(req.headers.get("authorization"))) throw unauthenticated(message, "(headers).authorization");
  };
}
