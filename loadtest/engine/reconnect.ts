/** What a connection tells its `Reconnector`, and what it is told back. */
export interface Reconnectable {
  /** Closed for good: no more attempts. */
  stopped(): boolean;
  /** Connected again by other means: nothing to do. */
  connected(): boolean;
  connect(): Promise<void>;
  /** A new connection is up. */
  reconnected(): void;
  /** An attempt failed; another follows after a longer delay. */
  failed(): void;
}

/**
 * Reconnects a load connection (HTTP/1 socket, HTTP/2 session) after it lost
 * it: one attempt at a time, 10 ms after the loss, then backing off
 * (doubling, at most 1 s) while attempts fail, until one succeeds or the
 * connection stops.
 */
export class Reconnector {
  private pending = false;
  private delayMs = 10;

  constructor(private readonly conn: Reconnectable) {}

  schedule(): void {
    if (this.conn.stopped() || this.pending) return;
    this.pending = true;
    setTimeout(() => {
      if (this.conn.stopped() || this.conn.connected()) {
        this.pending = false;
        return;
      }
      this.conn.connect().then(
        () => {
          this.pending = false;
          this.delayMs = 10;
          this.conn.reconnected();
        },
        () => {
          this.pending = false;
          this.conn.failed();
          this.delayMs = Math.min(1000, this.delayMs * 2);
          this.schedule();
        },
      );
    }, this.delayMs);
  }
}
