/**
 * Bytes of request bodies being read at once, across every connection. Each
 * body is capped (--max-body-bytes), but their number was not: 100
 * connections each sending 4 MiB less a byte of a /v1/lookup body and then
 * nothing took a server from 0.5 to 0.96 GB RSS, held until Bun dropped the
 * idle connections 12 s later (a client that reconnects keeps it there). A
 * large body (over 64 KiB, body.ts) or one without a length reserves each
 * chunk here as it comes (its declared length up front let header-only
 * connections fill it at no cost); past the cap it is a 503 (retryable), read
 * and dropped rather than held. Small bodies (every usual lookup) take nothing
 * from it: at most 64 KiB a connection.
 */
export class BodyBudget {
  private used = 0;

  constructor(private readonly capBytes: number) {
    if (!(capBytes > 0)) throw new Error(`the body budget must be positive, got ${capBytes}`);
  }

  /** Reserves `bytes`; false (nothing reserved) when they would pass the cap. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.capBytes) return false;
    this.used += bytes;
    return true;
  }

  /** Gives back what `take` reserved. */
  give(bytes: number): void {
    this.used -= bytes;
  }

  /** Bytes reserved now. */
  get inUse(): number {
    return this.used;
  }
}
