import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import { openDeadLetters, openPublisher, openStreamSource, replayDeadLetters, type StreamSource } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import type { NewDeadLetter } from "../src/ingest/dead-letters.ts";
import { IdempotencyWindow } from "../src/ingest/idempotency-window.ts";
import { compareIds, ID_TIME_MAX_AGE_MS, ID_TIME_MAX_AHEAD_MS, idTime, RedisStreamSource } from "../src/ingest/redis-stream-source.ts";
import { StreamConsumer } from "../src/ingest/stream-consumer.ts";
import { PushService } from "../src/serving/index.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { eventually, makeRig, paymentsMapping } from "./stream-source-contract.ts";
import { startRedisEngine } from "./support/stream-engines.ts";

/**
 * Entries a Redis stream drops before they are written (a MAXLEN trim, XDEL)
 * are counted, not hidden: Redis's own group lag keeps entries trimmed unread
 * in it forever, so `unprocessed` would never return to 0 and the loss would
 * have no name. An entry a producer wrote without the source's field is a dead
 * letter that says so. Real redis-server on a free port.
 */
describe("Redis stream source: what Redis drops or producers get wrong", () => {
  let engine: Awaited<ReturnType<typeof startRedisEngine>>;
  let redis: Redis;
  beforeAll(async () => {
    engine = await startRedisEngine();
    redis = new Redis(`redis://${engine.server.address}`);
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await engine?.stop();
  });

  const open = async (consumer: string): Promise<{ s: StreamSource; stream: string }> => {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const settings = engine.engineSettings({ takeoverMs: 1000 }) as { redis: { stream: string } };
    const [compiled] = compileSources({ sources: [{ name: "payments", ...settings, mappings: [paymentsMapping()] }] }, registry);
    const s = await openStreamSource(compiled!, consumer);
    await s.start();
    return { s, stream: settings.redis.stream };
  };
  const add = async (stream: string, n: number, maxLen?: number) => {
    for (let i = 0; i < n; i++) await (maxLen === undefined ? redis.xadd(stream, "*", "data", `{"i":${i}}`) : redis.xadd(stream, "MAXLEN", maxLen, "*", "data", `{"i":${i}}`));
  };
  const drain = async (s: StreamSource): Promise<number> => {
    let got = 0;
    for (;;) {
      const batch = await s.read(500, 10);
      if (batch.length === 0) return got;
      got += batch.length;
      await s.ack(batch);
    }
  };

  test("trimmed unread: counted while the group is behind and after it catches up; unprocessed returns to 0", async () => {
    const { s, stream } = await open("c1");
    try {
      await add(stream, 20, 50);
      expect(await s.lag()).toEqual({ pending: 0, unprocessed: 20, lostUnread: 0, lostPending: 0 });
      // The group reads 10, then 100 more are added to a stream capped at 50 (exact trim): 60 go unread.
      const first = await s.read(10, 10);
      expect(first.length).toBe(10);
      await s.ack(first);
      await add(stream, 100, 50);
      expect(await s.lag()).toEqual({ pending: 0, unprocessed: 50, lostUnread: 60, lostPending: 0 });
      expect(await drain(s)).toBe(50);
      // Redis's own lag still says 60 here; the source says what it is: nothing owed, 60 lost.
      const groups = (await redis.call("XINFO", "GROUPS", stream)) as unknown[][];
      expect(groups[0]![groups[0]!.indexOf("lag") + 1]).toBe(60);
      expect(await s.lag()).toEqual({ pending: 0, unprocessed: 0, lostUnread: 60, lostPending: 0 });
      // More traffic without loss changes nothing lost.
      await add(stream, 30, 50);
      expect(await drain(s)).toBe(30);
      expect(await s.lag()).toEqual({ pending: 0, unprocessed: 0, lostUnread: 60, lostPending: 0 });
    } finally {
      await s.close();
    }
  }, 30_000);

  test("deleted while pending: the consumer re-reading its pending entries finds them gone, acknowledges and counts them", async () => {
    const { s, stream } = await open("c2");
    try {
      await add(stream, 5);
      const batch = await s.read(5, 10);
      expect(batch.length).toBe(5);
      // Delivered, not acknowledged (a failed write); two are deleted before the retry.
      await redis.xdel(stream, batch[0]!.id, batch[1]!.id);
      await s.retryLater(batch, 0);
      let again: string[] = [];
      await eventually("the retry", async () => {
        again = (await s.read(10, 10)).map((d) => d.id);
        return again.length > 0;
      });
      expect(again).toEqual(batch.slice(2).map((d) => d.id));
      await s.ack(batch.slice(2));
      const lag = await s.lag();
      expect(lag).toMatchObject({ pending: 0, lostPending: 2 });
    } finally {
      await s.close();
    }
  }, 30_000);

  test("deleted while pending, then taken over: the consumer that claims the dead one's entries counts those gone", async () => {
    // Both consumers read the same stream (takeover after 1 s idle, the shortest claimIdle allowed).
    const { s: dead, stream } = await open("c3");
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const [compiled] = compileSources({ sources: [{ name: "payments", engine: "redis", redis: { url: `redis://${engine.server.address}`, stream, group: "quiver", claimIdle: "1s" }, mappings: [paymentsMapping()] }] }, registry);
    const heir = await openStreamSource(compiled!, "c4");
    await heir.start();
    try {
      await add(stream, 4);
      const held = await dead.read(4, 10);
      expect(held.length).toBe(4);
      // c3 dies holding them; one is trimmed away before c4 takes over (Redis 7's XAUTOCLAIM drops it and names it).
      await redis.xdel(stream, held[0]!.id);
      let taken: string[] = [];
      await eventually("the takeover", async () => {
        taken = [...taken, ...(await heir.read(10, 10)).map((d) => d.id)];
        return taken.length >= 3;
      });
      expect(taken).toEqual(held.slice(1).map((d) => d.id));
      expect(await heir.lag()).toMatchObject({ lostPending: 1 });
    } finally {
      await Promise.all([dead.close(), heir.close()]);
    }
  }, 30_000);

  test("a dead consumer's entries behind many live pending ones are claimed: XAUTOCLAIM goes on where its last walk stopped", async () => {
    const registry = await loadRegistryFile("src/registry/example-registry.yaml");
    const settings = engine.engineSettings({ takeoverMs: 60_000 }) as { redis: { stream: string } };
    const stream = settings.redis.stream;
    const [compiled] = compileSources({ sources: [{ name: "payments", ...settings, mappings: [paymentsMapping()] }] }, registry);
    const [live, dead, heir] = await Promise.all(["c-live", "c-dead", "c-heir"].map((c) => openStreamSource(compiled!, c)));
    await Promise.all([live!.start(), dead!.start(), heir!.start()]);
    try {
      // 150 entries a live consumer is working on (fresh), then 5 a dead one left idle for 2 minutes.
      await add(stream, 150);
      expect((await live!.read(150, 10)).length).toBe(150);
      await add(stream, 5);
      const held = await dead!.read(5, 10);
      expect(held.length).toBe(5);
      await redis.call("XCLAIM", stream, "quiver", "c-dead", 0, ...held.map((d) => d.id), "IDLE", 120_000, "JUSTID");
      // Reads of 10: each XAUTOCLAIM looks at 100 pending entries. From "0" every time, the walk never passed the
      // live consumer's 150 (the first read looked, and the next came 30 s later, from "0" again).
      const taken: string[] = [];
      for (let i = 0; i < 5 && taken.length < 5; i++) taken.push(...(await heir!.read(10, 10)).map((d) => d.id));
      expect(taken).toEqual(held.map((d) => d.id));
    } finally {
      await Promise.all([live!.close(), dead!.close(), heir!.close()]);
    }
  }, 30_000);

  test("an entry without the source's field is dead-lettered naming the field and showing the fields it had; its neighbour is written", async () => {
    const rig = await makeRig();
    const settings = engine.engineSettings({});
    const [compiled] = rig.compile([{ name: "payments", ...settings, batchSize: 50, mappings: [paymentsMapping()] }]);
    const stream = compiled!.redis!.stream;
    const deadLetters = await openDeadLetters(compiled!);
    const ingest = await rig.start([compiled!]);
    try {
      await redis.xadd(stream, "*", "payload", '{"customer":"nofield","amount":1,"ts":1}', "note", "x".repeat(100_000));
      await redis.xadd(stream, "*", "data", JSON.stringify({ customer: "fielded", amount: 2, count: 1, chargeback: false, ts: Date.now() - 1000 }));
      await eventually("the good entry written", async () => (await rig.row("fielded")) !== undefined);
      let letters: Awaited<ReturnType<typeof deadLetters.list>> = [];
      await eventually("the dead letter", async () => {
        letters = await deadLetters.list(10);
        return letters.length === 1;
      });
      const [letter] = letters;
      expect(letter).toMatchObject({ source: "payments", reason: "undecodable", path: "(entry).data" });
      expect(letter!.error).toContain('the entry has no field "data" (it has "payload", "note")');
      const shown = JSON.parse(new TextDecoder().decode(letter!.payload)) as Record<string, string>;
      expect(shown["payload"]).toBe('{"customer":"nofield","amount":1,"ts":1}');
      // A large field is cut, and says how large it was.
      expect(shown["note"]!.endsWith("… (100000 bytes)")).toBe(true);
      expect(letter!.payload.byteLength).toBeLessThan(70 * 1024);
      // Its payload is not an event: a replay keeps the letter and publishes nothing (it published the JSON of the
      // fields as a new entry's `data`, and deleted the letter, the only copy of the entry).
      const length = await redis.xlen(stream);
      const publisher = await openPublisher(compiled!);
      try {
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "payments" });
        expect(replayed).toEqual([]);
        expect(kept.map((l) => l.id)).toEqual([letter!.id]);
      } finally {
        await publisher.close();
      }
      expect(await redis.xlen(stream)).toBe(length);
      expect((await deadLetters.list(10)).map((l) => l.id)).toEqual([letter!.id]);
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 30_000);

  test("entries over maxEventBytes (a 5 MB field, 20,000 fields) are dead-lettered too_large with a bounded summary, never written; the consumer goes on", async () => {
    // The default bound (1 MiB). Without it the 5 MB entry was decoded and written, its letter (had it failed
    // mapping) kept all 5 MB, and the 20,000-field entry without "data" made a letter whose error named every field.
    const rig = await makeRig();
    const [compiled] = rig.compile([{ name: "payments", ...engine.engineSettings({}), batchSize: 50, mappings: [paymentsMapping()] }]);
    expect(compiled!.redis!.maxEventBytes).toBe(1 << 20);
    const stream = compiled!.redis!.stream;
    const deadLetters = await openDeadLetters(compiled!);
    const ingest = await rig.start([compiled!]);
    const event = (customer: string, extra: Record<string, unknown> = {}) => JSON.stringify({ customer, amount: 2, count: 1, chargeback: false, ts: Date.now() - 1000, ...extra });
    try {
      const huge = event("huge", { pad: "z".repeat(5 << 20) });
      await redis.xadd(stream, "*", "data", huge);
      const many: string[] = [];
      for (let i = 0; i < 20_000; i++) many.push(`f${i}`, "v".repeat(60));
      const small = event("many");
      await redis.xadd(stream, "*", "data", small, ...many);
      await redis.xadd(stream, "*", ...many);
      await redis.xadd(stream, "*", "data", event("fine"));
      await eventually("the good entry written", async () => (await rig.row("fine")) !== undefined);
      let letters: Awaited<ReturnType<typeof deadLetters.list>> = [];
      await eventually("three dead letters", async () => {
        letters = await deadLetters.list(10);
        return letters.length === 3;
      });
      expect(letters.map((l) => [l.reason, l.path, l.cutFrom])).toEqual([
        ["too_large", "(entry)", huge.length],
        ["too_large", "(entry)", undefined],
        ["too_large", "(entry).data", undefined],
      ]);
      expect(new TextDecoder().decode(letters[0]!.payload)).toBe(huge.slice(0, 4096));
      expect(letters[0]!.error).toBe(`the entry holds ${huge.length + 4} bytes in 1 field(s), over maxEventBytes (1048576); its "data" field is ${huge.length} bytes, of which this letter keeps the first 4096`);
      // The event itself was small: kept whole, and a replay publishes it without the 20,000 fields.
      expect(new TextDecoder().decode(letters[1]!.payload)).toBe(small);
      expect(letters[1]!.error).toContain("in 20001 field(s)");
      // No field "data": the fields it had, about 4 KiB of them, the rest counted; 20 names in the error.
      expect(letters[2]!.payload.byteLength).toBeLessThan(4096 + 512);
      expect(JSON.parse(new TextDecoder().decode(letters[2]!.payload))["…"]).toMatch(/^\d+ more field\(s\)$/);
      expect(letters[2]!.error).toContain('it has no field "data" (it has "f0", "f1"');
      expect(letters[2]!.error).toContain('"f19" and 19980 more)');
      for (const c of ["huge", "many"]) expect(await rig.row(c)).toBeUndefined();
      expect(ingest.status()[0]).toMatchObject({ state: "running", deadLettered: 3, written: 1, lastError: null });
      const publisher = await openPublisher(compiled!);
      try {
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "payments" });
        expect([replayed.map((l) => l.id), kept.map((l) => l.id)]).toEqual([[letters[1]!.id], [letters[0]!.id, letters[2]!.id]]);
      } finally {
        await publisher.close();
      }
      await eventually("the replayed event written", async () => (await rig.row("many")) !== undefined);
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 60_000);

  test("an entry over maxEventBytes only for its other fields keeps its event whole in the letter, and a replay writes it", async () => {
    // The event (600,000 bytes) is within the 1 MiB bound; a second field of as much puts the entry over it. The
    // letter kept the event's first 4 KiB, marked cut: never replayable, the event lost though it fitted.
    const rig = await makeRig();
    const [compiled] = rig.compile([{ name: "payments", ...engine.engineSettings({}), batchSize: 50, mappings: [paymentsMapping()] }]);
    const stream = compiled!.redis!.stream;
    const deadLetters = await openDeadLetters(compiled!);
    const ingest = await rig.start([compiled!]);
    try {
      const event = JSON.stringify({ customer: "within", amount: 2, count: 1, chargeback: false, ts: Date.now() - 1000, pad: "w".repeat(600_000) });
      await redis.xadd(stream, "*", "data", event, "trace", "t".repeat(600_000));
      let letters: Awaited<ReturnType<typeof deadLetters.list>> = [];
      await eventually("its letter", async () => {
        letters = await deadLetters.list(10);
        return letters.length === 1;
      });
      expect([letters[0]!.reason, letters[0]!.path, letters[0]!.cutFrom, letters[0]!.payload.byteLength]).toEqual(["too_large", "(entry)", undefined, event.length]);
      expect(new TextDecoder().decode(letters[0]!.payload)).toBe(event);
      expect(letters[0]!.error).toBe(`the entry holds ${event.length + 600_009} bytes in 2 field(s), over maxEventBytes (1048576); its "data" field is ${event.length} bytes, kept whole`);
      expect(await rig.row("within")).toBeUndefined();
      const publisher = await openPublisher(compiled!);
      try {
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "payments" });
        expect([replayed.map((l) => l.id), kept.length]).toEqual([[letters[0]!.id], 0]);
      } finally {
        await publisher.close();
      }
      await eventually("the replayed event written", async () => (await rig.row("within")) !== undefined);
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 60_000);

  test("an oversized entry delivered past maxDeliver and older than retryFor is dead-lettered too_large, cut and kept, not as a replayable delivery_limit", async () => {
    // A 2 MB event that crashed pods before maxEventBytes (out of memory), delivered 6 times over 7 hours. The
    // retryFor backstop wrote its letter from the delivery's payload, the first 4 KiB only, as delivery_limit without
    // cutFrom: a replay published those 4 KiB as the event and deleted the letter.
    const rig = await makeRig();
    const [compiled] = rig.compile([{ name: "payments", ...engine.engineSettings({}), batchSize: 50, maxDeliver: 3, mappings: [paymentsMapping()] }]);
    const { stream, group } = compiled!.redis!;
    const huge = JSON.stringify({ customer: "crasher", amount: 2, count: 1, chargeback: false, ts: Date.now() - 1000, pad: "z".repeat(2 << 20) });
    await redis.xadd(stream, `${Date.now() - 7 * 3600_000}-0`, "data", huge);
    await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
    // Delivered 6 times to this pod (named as the rig's consumer) already: each time it crashed.
    await redis.call("XREADGROUP", "GROUP", group, "oom-pod", "COUNT", 10, "STREAMS", stream, ">");
    for (let i = 0; i < 5; i++) await redis.call("XREADGROUP", "GROUP", group, "oom-pod", "COUNT", 10, "STREAMS", stream, "0");
    const deadLetters = await openDeadLetters(compiled!);
    const ingest = await rig.start([compiled!], "oom-pod");
    try {
      let letters: Awaited<ReturnType<typeof deadLetters.list>> = [];
      await eventually("its letter", async () => {
        letters = await deadLetters.list(10);
        return letters.length === 1;
      });
      expect([letters[0]!.reason, letters[0]!.cutFrom, letters[0]!.payload.byteLength]).toEqual(["too_large", huge.length, 4096]);
      const publisher = await openPublisher(compiled!);
      try {
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "payments" });
        expect([replayed.length, kept.map((l) => l.id)]).toEqual([0, [letters[0]!.id]]);
      } finally {
        await publisher.close();
      }
    } finally {
      await ingest.stop();
      await deadLetters.close();
    }
  }, 60_000);

  test("a parking consumer (<consumer>:handed-back) is removed once others claimed what it held, never while it holds entries", async () => {
    const { s: stale, stream } = await open("stale");
    await add(stream, 3);
    const batch = await stale.read(10, 10);
    expect(batch.length).toBe(3);
    await stale.handBack(batch);
    const consumers = async () => ((await redis.call("XINFO", "CONSUMERS", stream, "quiver")) as unknown[][]).map((c) => [String(c[1]), Number(c[3])]);
    // Still holding the entries: kept.
    await stale.lag();
    expect(await consumers()).toContainEqual(["stale:handed-back", 3]);
    // Another consumer of the group claims (their idle time is already claimIdle) and writes them.
    const taker = new Redis(`redis://${engine.server.address}`);
    try {
      const claimed = (await taker.call("XAUTOCLAIM", stream, "quiver", "other", 1000, "0", "COUNT", 10)) as [string, [string, string[]][]];
      expect(claimed[1].length).toBe(3);
      await taker.xack(stream, "quiver", ...claimed[1].map((e) => e[0]));
    } finally {
      taker.disconnect();
    }
    await stale.lag();
    expect((await consumers()).map((c) => c[0])).not.toContain("stale:handed-back");
    await stale.close();
  });

  test("a consumer that closes holding nothing leaves the group; one that closes holding entries stays for another to claim them", async () => {
    // Named <host>:<pid>, a consumer is new at every start: each restart left one in the group for good.
    const consumers = async (stream: string) => ((await redis.call("XINFO", "CONSUMERS", stream, "quiver")) as unknown[][]).map((c) => [String(c[1]), Number(c[3])]);
    const { s: done, stream } = await open("done-pod");
    await add(stream, 3);
    expect(await drain(done)).toBe(3);
    expect(await consumers(stream)).toEqual([["done-pod", 0]]);
    await done.close();
    expect(await consumers(stream)).toEqual([]);
    // Closed with a batch it could not write (a store outage at shutdown): kept, its entries still owed to the group.
    const { s: holding, stream: other } = await open("holding-pod");
    await add(other, 2);
    expect((await holding.read(10, 10)).length).toBe(2);
    await holding.close();
    expect(await consumers(other)).toEqual([["holding-pod", 2]]);
  });

  test("entries a producer added with its own ids (1-1, 2-0) are not taken for 56 years old: delivered past maxDeliver, they are written, not dead-lettered", async () => {
    const rig = await makeRig();
    const settings = engine.engineSettings({});
    const [compiled] = rig.compile([{ name: "payments", ...settings, batchSize: 50, maxDeliver: 3, mappings: [paymentsMapping()] }]);
    const { stream, group } = compiled!.redis!;
    const event = (customer: string) => JSON.stringify({ customer, amount: 2, count: 1, chargeback: false, ts: Date.now() - 1000 });
    await redis.xadd(stream, "1-1", "data", event("id-1-1"));
    await redis.xadd(stream, "2-0", "data", event("id-2-0"));
    // And one with the server's own id, after them (Redis keeps ids increasing: `*` takes the clock).
    const auto = (await redis.xadd(stream, "*", "data", event("id-auto")))!;
    // Delivered 6 times to this pod already (a store outage's retries, a crash loop): past maxDeliver.
    await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
    await redis.call("XREADGROUP", "GROUP", group, "pod", "COUNT", 10, "STREAMS", stream, ">");
    for (let i = 0; i < 5; i++) await redis.call("XREADGROUP", "GROUP", group, "pod", "COUNT", 10, "STREAMS", stream, "0");
    const now = Date.now();
    const source = new RedisStreamSource("payments", compiled!.redis!, "pod", () => now);
    const letters: NewDeadLetter[] = [];
    const deadLetters = {
      add: async (l: readonly NewDeadLetter[]) => {
        letters.push(...l);
        return 0;
      },
      list: async () => [],
      remove: async () => undefined,
      close: async () => undefined,
    };
    const consumer = new StreamConsumer(
      { source, compiled: compiled!, deadLetters, push: new PushService(rig.store, { maxFutureSkewMs: 3_600_000 }), store: rig.store, metrics: rig.metrics, seen: new IdempotencyWindow(0) },
      { readWaitMs: 10, lagIntervalMs: 1000, clock: () => now },
    );
    await consumer.start();
    try {
      await eventually("all three settled", async () => (await redis.xpending(stream, group))[0] === 0, 10_000);
    } finally {
      await consumer.stop();
    }
    // The ids 1-1 and 2-0 read as times said 1970: each was dead-lettered on sight ("delivered 7 times over
    // 29,5xx,xxx min, past retryFor"), the event never written.
    expect(letters.map((l) => [l.origin, l.error])).toEqual([]);
    for (const c of ["id-1-1", "id-2-0", "id-auto"]) expect([c, (await rig.row(c)) !== undefined]).toEqual([c, true]);
    expect([idTime("1-1", now), idTime("2-0", now), idTime(auto, now)]).toEqual([undefined, undefined, Number(auto.split("-")[0])]);
  }, 30_000);

  test("deliveries have one shape whether or not their id is a time: publishedAt an own property, undefined when unknown", async () => {
    // The consumer reads ~100k entries/s: a conditional spread of publishedAt cost an object per entry (127-178 against
    // 95-113 ns an entry) and gave deliveries two shapes.
    const { s, stream } = await open("shape");
    try {
      await redis.xadd(stream, "1-1", "data", '{"i":0}');
      const auto = (await redis.xadd(stream, "*", "data", '{"i":1}'))!;
      const batch = await s.read(10, 10);
      expect(batch.map((d) => Object.keys(d))).toEqual([
        ["id", "payload", "deliveries", "publishedAt"],
        ["id", "payload", "deliveries", "publishedAt"],
      ]);
      expect(batch.map((d) => d.publishedAt)).toEqual([undefined, Number(auto.split("-")[0])]);
      await s.ack(batch);
    } finally {
      await s.close();
    }
  });

  test("an entry id's time is taken for when it was added only within 30 days behind and 10 minutes ahead of the clock", () => {
    const now = 1_796_000_000_000;
    expect(idTime(`${now - 1000}-0`, now)).toBe(now - 1000);
    expect(idTime(`${now - ID_TIME_MAX_AGE_MS}-3`, now)).toBe(now - ID_TIME_MAX_AGE_MS);
    expect(idTime(`${now - ID_TIME_MAX_AGE_MS - 1}-0`, now)).toBeUndefined();
    expect(idTime(`${now + ID_TIME_MAX_AHEAD_MS}-0`, now)).toBe(now + ID_TIME_MAX_AHEAD_MS);
    // Seconds and microseconds since the epoch, a sequence: not a time in ms.
    expect(idTime(`${Math.floor(now / 1000)}-0`, now)).toBeUndefined();
    expect(idTime(`${now * 1000}-0`, now)).toBeUndefined();
    expect(idTime("42-0", now)).toBeUndefined();
  });

  test("stream IDs order by time, then sequence, as numbers", () => {
    expect(compareIds("1-0", "1-0")).toBe(0);
    expect(compareIds("9-0", "10-0")).toBe(-1);
    expect(compareIds("10-2", "10-10")).toBe(-1);
    expect(compareIds("1796479774827-0", "1796479774544-5")).toBe(1);
  });
});
