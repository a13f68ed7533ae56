/**
 * The gRPC edge's HTTP/2 connections, counted for the metrics: how many are
 * open now and how many were accepted. With --grpc-max-connection-age a
 * long-lived client's connection is replaced every age, so the accepted count
 * grows by about clients ÷ age, and the open count of the pods behind one
 * balancer evens out after a scale-out (the open count alone did not say
 * whether that happened).
 *
 * grpc-js (1.14) keeps its HTTP/2 servers in a private `http2Servers` map,
 * each entry with the `sessions` it holds open; that is read here once bound
 * (`follow`), and each server's public `session` event counts acceptances. A
 * grpc-js whose server differs is said once and counts nothing. No cost per
 * call; one listener call per connection; the open count is read at scrape.
 */
export class GrpcConnections {
  private readonly sets: ReadonlySet<unknown>[] = [];
  private followed = false;

  constructor(
    /** Told of each connection accepted. */
    private readonly onAccepted: () => void,
    private readonly warn: (message: string) => void = console.warn,
  ) {}

  /** Follows the connections of a grpc-js `Server` once it is bound; false (said once) when it is not read as expected. */
  follow(server: unknown): boolean {
    if (this.followed) return true;
    const servers = (server as { http2Servers?: unknown } | null)?.http2Servers;
    const entries = servers instanceof Map ? [...servers.entries()] : [];
    const usable = entries.length > 0 && entries.every(([http2, info]) => typeof (http2 as { on?: unknown })?.on === "function" && (info as { sessions?: unknown })?.sessions instanceof Set);
    if (!usable) {
      this.warn("quiver: gRPC: this @grpc/grpc-js's server is not the one connections.ts reads (1.14's http2Servers); gRPC connections are not counted");
      return false;
    }
    this.followed = true;
    for (const [http2, info] of entries) {
      this.sets.push((info as { sessions: Set<unknown> }).sessions);
      (http2 as { on(event: "session", listener: () => void): unknown }).on("session", this.onAccepted);
    }
    return true;
  }

  /** Connections open now (undefined when not followed). */
  get open(): number | undefined {
    if (!this.followed) return undefined;
    let n = 0;
    for (const s of this.sets) n += s.size;
    return n;
  }
}
