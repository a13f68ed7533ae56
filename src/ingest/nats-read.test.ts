import { expect, test } from "bun:test";
import type { NatsSourceSettings } from "./compile-sources.ts";
import { NatsStreamSource } from "./nats-stream-source.ts";

/**
 * nats.js's `msg.data` is a getter: for a message with headers (a producer's
 * Nats-Msg-Id) each read makes a new subarray of the message's buffer. The
 * read loop runs for every event (~100k/s).
 */
test("a read takes each message's data once, under maxEventBytes or over it", async () => {
  const settings = { servers: "nats://127.0.0.1:1", stream: "S", consumer: "c", subject: "s.e", ackWaitMs: 30_000, maxAckPending: 40, deadLetterStream: "S_DEAD", maxEventBytes: 1024 } as NatsSourceSettings;
  const source = new NatsStreamSource("n", settings, { batchSize: 10 });
  let reads = 0;
  const message = (seq: number, size: number) => {
    const raw = new Uint8Array(size + 16);
    return {
      seq,
      get data() {
        reads++;
        return raw.subarray(16);
      },
      info: { redeliveryCount: 1, timestampNanos: 1_796_000_000_000 * 1e6 },
    };
  };
  (source as unknown as { queue: unknown[] }).queue.push(message(1, 100), message(2, 5000));
  const batch = await source.read(10, 0);
  expect(batch.map((d) => [d.id, d.payload.length, d.unreadable?.reason])).toEqual([
    ["1", 100, undefined],
    ["2", 4096, "too_large"],
  ]);
  expect(reads).toBe(2);
  await source.close();
});
