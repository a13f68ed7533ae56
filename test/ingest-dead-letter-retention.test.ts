import { afterAll, beforeAll, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { connect, DiscardPolicy, nanos } from "nats";
import type { NewDeadLetter } from "../src/ingest/dead-letters.ts";
import { NatsDeadLetters } from "../src/ingest/nats-stream-source.ts";
import { RedisDeadLetters } from "../src/ingest/redis-stream-source.ts";
import { type NatsProcess, startNats } from "./support/nats-process.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A dead-letter stream is bounded by its source's retention (deadLetters.maxLetters / maxAge): a flood of bad
 * events used to grow it without limit, in the same Redis or JetStream that carries the source.
 */
let redis: RedisProcess;
let nats: NatsProcess;

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
}, 60_000);

afterAll(async () => {
  await Promise.all([redis?.stop(), nats?.stop()]);
});

const letters = (from: number, n: number): NewDeadLetter[] =>
  Array.from({ length: n }, (_, i) => ({ source: "s", reason: "invalid_value", path: "x", error: "bad", payload: new Uint8Array([from + i]), origin: String(from + i) }));

test("Redis: past maxLetters the oldest letters go, and add says how many it removed", async () => {
  const client = new Redis(`redis://${redis.address}`);
  try {
    // Approximate trimming removes whole stream nodes: small nodes make it land close to the limit in a test.
    await client.config("SET", "stream-node-max-entries", "10");
    const queue = new RedisDeadLetters(`redis://${redis.address}`, "count:dead", { maxLetters: 50, maxAgeMs: 0 });
    let trimmed = 0;
    for (let i = 0; i < 30; i++) trimmed += await queue.add(letters(i * 10, 10));
    const length = await client.xlen("count:dead");
    expect(length).toBeGreaterThanOrEqual(50);
    expect(length).toBeLessThan(50 + 10);
    expect(trimmed).toBe(300 - length);
    // The newest are kept, oldest first as listed.
    const listed = await queue.list(1000);
    expect(listed.at(-1)!.origin).toBe("299");
    expect(Number(listed[0]!.origin)).toBe(300 - length);
    await queue.close();
  } finally {
    client.disconnect();
  }
});

test("Redis: letters older than maxAge go on the next add; younger ones stay", async () => {
  const client = new Redis(`redis://${redis.address}`);
  try {
    await client.config("SET", "stream-node-max-entries", "10");
    // Twenty letters from an hour ago (ids are milliseconds), as an earlier run would have left them.
    const hourAgo = Date.now() - 3600_000;
    for (let i = 0; i < 20; i++) await client.xadd("age:dead", `${hourAgo}-${i}`, "source", "s", "reason", "invalid_value", "path", "", "error", "old", "origin", `old${i}`, "at", String(hourAgo), "payload", "x");
    const queue = new RedisDeadLetters(`redis://${redis.address}`, "age:dead", { maxLetters: 1000, maxAgeMs: 600_000 });
    const trimmed = await queue.add(letters(0, 5));
    expect(trimmed).toBe(20);
    expect((await queue.list(100)).map((l) => l.origin)).toEqual(["0", "1", "2", "3", "4"]);
    await queue.close();
  } finally {
    client.disconnect();
  }
});

test("NATS: the dead-letter stream is made with the retention as its limits (discarding the oldest), and a stream made without limits takes them", async () => {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await nc.jetstreamManager();
    // Made by an earlier version: no limits.
    await jsm.streams.add({ name: "OLD_DEAD", subjects: ["OLD_DEAD.>"] });
    const old = new NatsDeadLetters(nats.url, "OLD_DEAD", { maxLetters: 40, maxAgeMs: 90_000 });
    expect(await old.add(letters(0, 1))).toBeUndefined();
    const config = (await jsm.streams.info("OLD_DEAD")).config;
    expect({ max_msgs: config.max_msgs, max_age: config.max_age, discard: config.discard, duplicate_window: config.duplicate_window }).toEqual({
      max_msgs: 40,
      max_age: nanos(90_000),
      discard: DiscardPolicy.Old,
      // JetStream refuses an age limit under its 2 min default duplicate window.
      duplicate_window: nanos(90_000),
    });
    await old.close();

    // A stream whose duplicate window is longer than the age limit: the window follows it down (the server refused
    // the update otherwise, and with it every letter).
    await jsm.streams.add({ name: "LONG_WINDOW_DEAD", subjects: ["LONG_WINDOW_DEAD.>"], duplicate_window: nanos(600_000) });
    const windowed = new NatsDeadLetters(nats.url, "LONG_WINDOW_DEAD", { maxLetters: 40, maxAgeMs: 300_000 });
    await windowed.add(letters(0, 2));
    const windowedConfig = (await jsm.streams.info("LONG_WINDOW_DEAD")).config;
    expect([windowedConfig.max_age, windowedConfig.duplicate_window]).toEqual([nanos(300_000), nanos(300_000)]);
    expect((await windowed.list(10)).length).toBe(2);
    await windowed.close();

    const fresh = new NatsDeadLetters(nats.url, "NEW_DEAD", { maxLetters: 25, maxAgeMs: 7 * 24 * 3600_000 });
    for (let i = 0; i < 6; i++) await fresh.add(letters(i * 10, 10));
    const info = await jsm.streams.info("NEW_DEAD");
    expect(info.config.max_age).toBe(nanos(7 * 24 * 3600_000));
    expect(info.state.messages).toBe(25);
    const listed = await fresh.list(100);
    expect(listed.map((l) => l.origin)).toEqual(Array.from({ length: 25 }, (_, i) => String(35 + i)));
    await fresh.close();
  } finally {
    await nc.close();
  }
});
