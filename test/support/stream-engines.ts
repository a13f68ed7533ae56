import { afterAll, beforeAll } from "bun:test";
import type { SourceDef } from "../../src/ingest/sources-definitions.ts";
import { type NatsProcess, startNats } from "./nats-process.ts";
import { type RedisProcess, startRedis } from "./redis-process.ts";

/**
 * A real streaming engine for tests, and source definitions on it. Every
 * call of `engineSettings` names a fresh stream, so one server serves a whole
 * test file without tests seeing each other's messages.
 */
export interface EngineHarness {
  readonly engine: "redis" | "nats";
  /** The `redis:`/`nats:` block of a source definition on a fresh stream; `takeoverMs` = claim idle / ack wait. */
  engineSettings(opts?: { readonly takeoverMs?: number }): Pick<SourceDef, "engine" | "redis" | "nats">;
  stop(): Promise<void>;
}

let counter = 0;
const fresh = (prefix: string) => `${prefix}${process.pid}_${++counter}`;

export async function startRedisEngine(): Promise<EngineHarness & { readonly server: RedisProcess }> {
  const server = await startRedis();
  return {
    engine: "redis",
    server,
    engineSettings: (opts = {}) => ({
      engine: "redis",
      redis: { url: `redis://${server.address}`, stream: fresh("events:"), group: "quiver", claimIdle: `${opts.takeoverMs ?? 30_000}ms` },
    }),
    stop: () => server.stop(),
  };
}

export async function startNatsEngine(): Promise<EngineHarness & { readonly server: NatsProcess }> {
  const server = await startNats();
  return {
    engine: "nats",
    server,
    engineSettings: (opts = {}) => {
      const stream = fresh("EVENTS_");
      return { engine: "nats", nats: { servers: server.url, stream, consumer: "quiver", subject: `${stream.toLowerCase()}.events`, ackWait: `${opts.takeoverMs ?? 30_000}ms` } };
    },
    stop: () => server.stop(),
  };
}

/**
 * One engine for the tests of the enclosing file or describe block: started
 * before them, stopped after; the getter answers it once started.
 */
export function useEngine<T extends EngineHarness>(start: () => Promise<T>): () => T {
  let engine: T | undefined;
  beforeAll(async () => {
    engine = await start();
  }, 60_000);
  afterAll(async () => {
    await engine?.stop();
  }, 60_000);
  return () => {
    if (engine === undefined) throw new Error("useEngine: the engine is not started yet (read it inside a test)");
    return engine;
  };
}
