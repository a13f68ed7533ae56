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
    // A token from a file or secret that ends in a newline can never be sent in a header: every write was a 401.
    if (/\s/u.test(token) || [...token].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) throw new Error("the admin token holds a space, line break or control character, which no header can carry (a secret made from a file keeps its trailing newline)");
    this.expected = digests.sha256(token);
  }

  /** Does an Authorization value (absent: null or undefined) carry the token? The scheme's case does not matter (RFC 7235). */
  admits(authorization: string | null | undefined): boolean {
    if (typeof authorization !== "string" || authorization.length < 7 || authorization.charCodeAt(6) !== 32 || authorization.slice(0, 6).toLowerCase() !== "bearer") return false;
    return digests.timingSafeEqual(digests.sha256(authorization.slice(7)), this.expected);
  }
}
