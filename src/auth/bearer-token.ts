import { digests } from "../runtime/digest.ts";

/**
 * A shared secret presented as `Bearer <token>` (HTTP's Authorization header,
 * gRPC's `authorization` metadata). Checked in constant time in what the
 * client sent: both sides are hashed to 32 bytes first, so neither a value's
 * content nor its length shows in how long the answer takes.
 */
export class BearerToken {
  private readonly expected: Uint8Array;

  constructor(token: string) {
    if (token === "") throw new Error("a bearer token must not be empty");
    this.expected = digests.sha256(`Bearer ${token}`);
  }

  /** Does an Authorization value (absent: null or undefined) carry the token? */
  admits(authorization: string | null | undefined): boolean {
    if (typeof authorization !== "string") return false;
    return digests.timingSafeEqual(digests.sha256(authorization), this.expected);
  }
}
