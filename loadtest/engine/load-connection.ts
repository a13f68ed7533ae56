/**
 * What the engine drives: one request in flight at a time, the engine's
 * bookkeeping fields, and callbacks through a ConnectionListener. HTTP/1
 * (http1/connection.ts) and gRPC (grpc/connection.ts) implement it.
 */
export interface LoadConnection {
  busy: boolean;
  intendedAt: number;
  sentAt: number;
  /** When the engine last found it free (ms): a request due earlier waited for a connection, not for the generator. */
  idleAt: number;
  template: number;
  /** Per-template request buffers, filled in place for each request. */
  readonly buffers: (Uint8Array | undefined)[];
  connect(): Promise<void>;
  send(bytes: Uint8Array, now: number): void;
  abort(kind: string): void;
  stop(): void;
}
