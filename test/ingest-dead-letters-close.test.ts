import { expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { NatsDeadLetters } from "../src/ingest/nats-stream-source.ts";
import { RedisDeadLetters } from "../src/ingest/redis-stream-source.ts";
import { eventually } from "./stream-source-contract.ts";
import { startRedis } from "./support/redis-process.ts";

/**
 * Closing a dead-letter queue whose server stalled (accepts connections,
 * never answers: SIGSTOP, a partition without RST) is bounded: NATS's close
 * waited for nats.js's 20 s connect timeout (the reviewer's scratch/dlq.ts:
 * 20.0 s); Redis's QUIT timed out and its connection stayed open.
 */
async function stalledServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s: Socket) => {
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return { server, port };
}

/** Whether `work` settles within `ms` (a bound far from both the fixed and the broken timing). */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([work.then(() => true, () => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return done;
}

test("NATS: closing the dead-letter queue while its connect to a stalled server is in flight returns within the drain bound, not nats.js's 20 s connect timeout", async () => {
  const { server, port } = await stalledServer();
  try {
    const queue = new NatsDeadLetters(`nats://127.0.0.1:${port}`, "DLQ_STALLED");
    const adding = queue.add([{ source: "s", reason: "invalid_value", path: "x", error: "e", payload: new Uint8Array([1]), origin: "1" }]).catch(() => undefined);
    // 2 s (DRAIN_MS) when bounded; 20 s before. 10 s sits far from both.
    expect(await settlesWithin(queue.close(), 10_000)).toBe(true);
    void adding;
  } finally {
    server.close();
  }
}, 30_000);

test("Redis: closing the dead-letter queue of a stalled server ends its connection once QUIT goes unanswered", async () => {
  const redis = await startRedis();
  try {
    const queue = new RedisDeadLetters(`redis://${redis.address}`, "dead");
    await queue.add([{ source: "s", reason: "invalid_value", path: "x", error: "e", payload: new Uint8Array([1]), origin: "1" }]);
    redis.pause();
    // QUIT goes unanswered until the command timeout (5 s); the connection then ends, though the server never answers.
    await queue.close();
    const client = (queue as unknown as { redis: { status: string } }).redis;
    await eventually("the connection ended", () => client.status === "end", 10_000);
  } finally {
    redis.resume();
    await redis.stop();
  }
}, 30_000);
