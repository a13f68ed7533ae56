import { createServer, type Socket, connect } from "node:net";

/**
 * A TCP proxy on 127.0.0.1 that holds every chunk `delayMs` before passing it
 * on, in each direction: a stand-in for network distance (the kernel here has
 * no netem). Order is kept per direction; `setDelay` changes the delay for
 * chunks that arrive afterwards (never reordering ones already queued).
 */
export interface DelayProxy {
  readonly port: number;
  setDelay(ms: number): void;
  /** Stops listening and closes every proxied connection. */
  close(): Promise<void>;
}

export interface DelayProxyOptions {
  readonly targetPort: number;
  readonly targetHost?: string;
  /** One-way delay in ms (so a request/response round trip gains 2 × delayMs). */
  readonly delayMs: number;
}

/** Forwards `from` → `to`, each chunk released `delay()` ms after it arrived, in order. */
function pipeDelayed(from: Socket, to: Socket, delay: () => number): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastAt = 0;
  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
      const { chunk } = queue.shift()!;
      if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.at - performance.now()));
  };
  from.on("data", (chunk: Buffer) => {
    const d = delay();
    if (d <= 0 && queue.length === 0) {
      to.write(chunk);
      return;
    }
    const at = Math.max(lastAt, performance.now() + d);
    lastAt = at;
    queue.push({ at, chunk });
    if (timer === undefined) timer = setTimeout(flush, Math.max(0, at - performance.now()));
  });
  from.on("end", () => {
    const wait = Math.max(0, lastAt - performance.now()) + 1;
    setTimeout(() => to.end(), wait);
  });
}

export function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  let delayMs = options.delayMs;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: options.targetHost ?? "127.0.0.1", port: options.targetPort });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
    client.on("close", closeBoth);
    upstream.on("close", closeBoth);
    pipeDelayed(client, upstream, () => delayMs);
    pipeDelayed(upstream, client, () => delayMs);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("delay proxy: no port"));
        return;
      }
      resolve({
        port: address.port,
        setDelay: (ms) => {
          delayMs = ms;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            sockets.clear();
            server.close(() => done());
          }),
      });
    });
  });
}
