import { afterAll, beforeAll, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { startDelayProxy } from "./support/delay-proxy.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

let server: RedisProcess;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});

test("the delay proxy adds its delay each way, keeps order, and can change the delay", async () => {
  const proxy = await startDelayProxy({ targetPort: server.port, delayMs: 20 });
  const client = new Redis({ host: "127.0.0.1", port: proxy.port, maxRetriesPerRequest: 1 });
  try {
    await client.ping();
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.echo(`m${i}`)));
    const ms = performance.now() - started;
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // At least one round trip: 2 × 20 ms (no upper bound: the machine may be loaded).
    expect(ms).toBeGreaterThanOrEqual(39);
    proxy.setDelay(0);
    await client.ping();
    const fast = performance.now();
    await client.ping();
    console.log(`delay proxy: 20 pipelined commands at 20 ms each way took ${ms.toFixed(1)} ms; at 0 ms one PING took ${(performance.now() - fast).toFixed(2)} ms`);
  } finally {
    client.disconnect();
    await proxy.close();
  }
});
