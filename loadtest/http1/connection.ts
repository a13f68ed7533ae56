import type { Socket, SocketHandler } from "bun";
import type { LoadConnection } from "../engine/load-connection.ts";
import { Reconnector } from "../engine/reconnect.ts";
import { ProtocolError, ResponseParser } from "./response-parser.ts";

/** What a connection reports back to the engine that drives it. */
export interface ConnectionListener<C = Http1Connection> {
  /** A response completed; `reusable` is false when the connection now reconnects. */
  onResponse(conn: C, status: number, reusable: boolean): void;
  /** A request failed (reset, protocol, timeout, ...), or a reconnect did (`connect`, inFlight false). */
  onFailure(conn: C, kind: string, inFlight: boolean): void;
  /** The connection is (re)connected and idle. */
  onReady(conn: C): void;
}

/**
 * One keep-alive HTTP/1.1 connection over a raw Bun socket with at most one
 * request in flight. Raw sockets and prebuilt request bytes keep the generator's
 * cost per request far below `fetch`, so it does not become the bottleneck.
 */
export class Http1Connection implements LoadConnection {
  private socket: Socket<Http1Connection> | null = null;
  private readonly parser = new ResponseParser();
  private unsent: Uint8Array | null = null;
  private stopped = false;
  private readonly reconnector = new Reconnector({
    stopped: () => this.stopped,
    connected: () => this.socket !== null,
    connect: () => this.connect(),
    reconnected: () => this.listener.onReady(this),
    failed: () => this.listener.onFailure(this, "connect", false),
  });
  /** Engine bookkeeping for the in-flight request (no per-request objects). */
  busy = false;
  intendedAt = 0;
  sentAt = 0;
  idleAt = 0;
  template = 0;
  /** Per-template request buffers, filled in place for each request. */
  readonly buffers: (Uint8Array | undefined)[] = [];

  constructor(
    readonly id: number,
    private readonly hostname: string,
    private readonly port: number,
    private readonly listener: ConnectionListener,
  ) {}

  /** Opens the socket; resolves once connected (or rejects on failure). */
  async connect(): Promise<void> {
    this.parser.reset();
    this.socket = await Bun.connect<Http1Connection>({
      hostname: this.hostname,
      port: this.port,
      data: this,
      socket: HANDLERS,
    });
    this.socket.setNoDelay(true);
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /** Sends one request; the caller has set intendedAt/template and marked busy. */
  send(bytes: Uint8Array, now: number): void {
    const socket = this.socket;
    this.sentAt = now;
    this.busy = true;
    if (socket === null) {
      this.fail("reset");
      return;
    }
    const n = socket.write(bytes);
    this.unsent = n < bytes.length ? bytes.subarray(Math.max(0, n)) : null;
  }

  /** Abandons the in-flight request (timeout) and reconnects. */
  abort(kind: string): void {
    if (!this.busy) return;
    this.fail(kind);
  }

  /** Closes for good; no reconnects. */
  stop(): void {
    this.stopped = true;
    this.busy = false;
    const s = this.socket;
    this.socket = null;
    if (s !== null) {
      s.data = DETACHED;
      s.end();
    }
  }

  onData(chunk: Uint8Array): void {
    if (!this.busy) return; // stray bytes after an abort
    let status: number;
    try {
      status = this.parser.push(chunk);
    } catch (e) {
      this.fail(e instanceof ProtocolError ? "protocol" : "client");
      return;
    }
    if (status === 0) return;
    this.busy = false;
    const close = this.parser.closeAfter;
    if (close) this.restart();
    this.listener.onResponse(this, status, !close);
  }

  onDrain(): void {
    const rest = this.unsent;
    if (rest === null || this.socket === null) return;
    const n = this.socket.write(rest);
    this.unsent = n < rest.length ? rest.subarray(Math.max(0, n)) : null;
  }

  onClose(): void {
    this.socket = null;
    if (this.busy && this.parser.readsUntilClose) {
      this.busy = false;
      const status = this.parser.finishOnClose();
      this.scheduleReconnect();
      this.listener.onResponse(this, status, false);
      return;
    }
    const wasBusy = this.busy;
    this.busy = false;
    this.scheduleReconnect();
    if (wasBusy) this.listener.onFailure(this, "reset", true);
  }

  private fail(kind: string): void {
    this.busy = false;
    this.restart();
    this.listener.onFailure(this, kind, true);
  }

  private restart(): void {
    const s = this.socket;
    this.socket = null;
    this.unsent = null;
    if (s !== null) {
      s.data = DETACHED;
      s.terminate();
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.parser.reset();
    this.reconnector.schedule();
  }
}

/** Sockets whose connection was abandoned point here, so their late events are ignored. */
const DETACHED = {
  onData() {},
  onDrain() {},
  onClose() {},
} as unknown as Http1Connection;

/** One shared handler table for every socket (Bun's recommended, allocation-free shape). */
const HANDLERS: SocketHandler<Http1Connection> = {
  binaryType: "uint8array",
  data(socket, data) {
    socket.data.onData(data);
  },
  drain(socket) {
    socket.data.onDrain();
  },
  close(socket) {
    socket.data.onClose();
  },
  error(socket) {
    socket.data.onClose();
  },
};
