import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encode } from "@msgpack/msgpack";
import { type CompiledSource, type DeadLetterQueue, IngestMetrics, IngestService, openDeadLetters, openPublisher, openStreamSource, replayDeadLetters, type StreamPublisher } from "../src/ingest/index.ts";
import { compileSources } from "../src/ingest/read-sources.ts";
import type { SourceDef } from "../src/ingest/sources-definitions.ts";
import { ArenaKvNode } from "../src/kv/arena-node.ts";
import type { KvNode, StoredRow } from "../src/kv/kv-node.ts";
import { MetricsRegistry } from "../src/ops/index.ts";
import { type CompiledView, loadRegistryFile, type Registry } from "../src/registry/index.ts";
import { keyPart, PushService } from "../src/serving/index.ts";
import type { EngineHarness } from "./support/stream-engines.ts";

/** Per test: generous, the machine is shared and engines start slowly under load. */
const TEST_TIMEOUT_MS = 60_000;

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** Polls until `check` holds; fails the test with `what` after `timeoutMs` (generous: the machine is shared). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until the consumer owes the engine nothing: every message settled (lag sampled every 200 ms). */
async function nothingOwed(ingest: IngestService): Promise<void> {
  await eventually("nothing owed to the group", () => {
    const lag = ingest.status()[0]!.lag;
    return lag !== null && lag.pending === 0 && lag.unprocessed === 0;
  });
}

/** Deterministic Fisher–Yates shuffle (a fixed LCG), so a failure reproduces. */
export function shuffle<T>(items: T[], seed: number): void {
  let state = seed;
  for (let i = items.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const j = state % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** The payments schema of the first source: flat JSON, epoch ms. */
export const paymentsMapping = (extra: Partial<SourceDef["mappings"][number]> = {}): SourceDef["mappings"][number] => ({
  featureView: "fraud_signals",
  keys: { customer_id: "customer" },
  features: { spend_1h: "amount", txn_count_1h: "count", chargeback_flag: "chargeback", risk_score: { value: 0.25 } },
  eventTime: { path: "ts", format: "epoch_ms" },
  ...extra,
});

interface Rig {
  readonly registry: Registry;
  readonly store: KvNode;
  readonly view: CompiledView;
  readonly metrics: IngestMetrics;
  compile(sources: SourceDef[]): CompiledSource[];
  start(sources: CompiledSource[], consumerName?: string): Promise<IngestService>;
  row(customer: string): Promise<StoredRow | undefined>;
}

export async function makeRig(): Promise<Rig> {
  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const store = new ArenaKvNode("ingest-test");
  const push = new PushService(store, { maxFutureSkewMs: 3_600_000 });
  const view = registry.views.get("fraud_signals")!;
  const registryOfMetrics = new MetricsRegistry();
  const metrics = new IngestMetrics(registryOfMetrics);
  return {
    registry,
    store,
    view,
    metrics,
    compile: (sources) => compileSources({ sources }, registry),
    start: (sources, consumerName = "c1") =>
      IngestService.start(sources, { push, store, metrics, consumerName, consumerOptions: { readWaitMs: 200, lagIntervalMs: 200, pauseMs: { initial: 50, max: 500 } } }),
    row: async (customer) => {
      const [slot] = await store.getMany([view.keyPrefix + keyPart(view.joinKeys[0]!, customer, "customer")]);
      return slot === undefined || typeof slot === "symbol" ? undefined : (slot as StoredRow);
    },
  };
}

/**
 * The behaviour every StreamSource must show, and the consumer's guarantees
 * on top of it, run against each engine (real redis-server, real
 * nats-server -js). Every test uses its own stream.
 */
export function runStreamSourceContract(name: string, startEngine: () => Promise<EngineHarness>): void {
  describe(`StreamSource contract: ${name}`, () => {
    let engine: EngineHarness;
    let rig: Rig;
    beforeAll(async () => {
      engine = await startEngine();
      rig = await makeRig();
    }, 60_000);
    afterAll(async () => {
      await engine?.stop();
    }, 60_000);

    const source = (opts: { takeoverMs?: number; format?: "json" | "msgpack"; mappings?: SourceDef["mappings"]; maxDeliver?: number; name?: string; maxEventBytes?: number } = {}): SourceDef => ({
      name: opts.name ?? "payments",
      ...engine.engineSettings(opts.takeoverMs === undefined ? {} : { takeoverMs: opts.takeoverMs }),
      format: opts.format ?? "json",
      batchSize: 50,
      ...(opts.maxDeliver === undefined ? {} : { maxDeliver: opts.maxDeliver }),
      ...(opts.maxEventBytes === undefined ? {} : { maxEventBytes: opts.maxEventBytes }),
      mappings: opts.mappings ?? [paymentsMapping()],
    });

    /** Runs `body` with a consumer of `def` started, its publisher and its dead letters; stops and closes them after. */
    const withSource = async (def: SourceDef, body: (o: { publisher: StreamPublisher; deadLetters: DeadLetterQueue; ingest: IngestService }) => Promise<void>): Promise<void> => {
      const [compiled] = rig.compile([def]);
      const publisher = await openPublisher(compiled!);
      const deadLetters = await openDeadLetters(compiled!);
      const ingest = await rig.start([compiled!]);
      try {
        await body({ publisher, deadLetters, ingest });
      } finally {
        await ingest.stop();
        await deadLetters.close();
        await publisher.close();
      }
    };

    test("delivers what was published to the group, and nothing more once acknowledged", async () => {
      const [compiled] = rig.compile([source()]);
      const publisher = await openPublisher(compiled!);
      const s = await openStreamSource(compiled!, "c1");
      try {
        await s.start();
        const before = Date.now();
        await publisher.publish(Array.from({ length: 20 }, (_, i) => json({ i })));
        const got: string[] = [];
        await eventually("20 deliveries", async () => {
          const batch = await s.read(50, 200);
          for (const d of batch) {
            expect(d.deliveries).toBe(1);
            // When the engine took it (retryFor's age): between the publish and now, to the millisecond.
            expect(d.publishedAt).toBeGreaterThanOrEqual(before - 1);
            expect(d.publishedAt).toBeLessThanOrEqual(Date.now() + 1);
            got.push(new TextDecoder().decode(d.payload));
          }
          await s.ack(batch);
          return got.length >= 20;
        });
        expect(got).toEqual(Array.from({ length: 20 }, (_, i) => JSON.stringify({ i })));
        expect(await s.read(50, 200)).toEqual([]);
        await eventually("no lag", async () => {
          const lag = await s.lag();
          return lag.pending === 0 && (lag.unprocessed ?? 0) === 0;
        });
      } finally {
        await s.close();
        await publisher.close();
      }
    }, TEST_TIMEOUT_MS);

    test("another consumer of the group takes over what a dead consumer left unacknowledged", async () => {
      const [compiled] = rig.compile([source({ takeoverMs: 1000 })]);
      const publisher = await openPublisher(compiled!);
      const first = await openStreamSource(compiled!, "dies");
      const second = await openStreamSource(compiled!, "takes-over");
      try {
        await first.start();
        await publisher.publish(Array.from({ length: 5 }, (_, i) => json({ i })));
        const taken: number[] = [];
        await eventually("the first consumer holds all 5", async () => {
          for (const d of await first.read(50, 200)) taken.push(Number(d.id === "" ? -1 : 0));
          return taken.length >= 5;
        });
        await first.close(); // never acked: as if killed
        await second.start();
        const redelivered = new Map<string, number>();
        await eventually("the second consumer gets all 5 again", async () => {
          const batch = await second.read(50, 200);
          for (const d of batch) redelivered.set(new TextDecoder().decode(d.payload), d.deliveries);
          await second.ack(batch);
          return redelivered.size >= 5;
        });
        for (const deliveries of redelivered.values()) expect(deliveries).toBeGreaterThanOrEqual(2);
      } finally {
        await second.close();
        await publisher.close();
      }
    }, TEST_TIMEOUT_MS);

    test("retryLater hands messages back and they come again after the delay", async () => {
      const [compiled] = rig.compile([source()]);
      const publisher = await openPublisher(compiled!);
      const s = await openStreamSource(compiled!, "c1");
      try {
        await s.start();
        await publisher.publish([json({ n: 1 }), json({ n: 2 })]);
        let batch: Awaited<ReturnType<typeof s.read>> = [];
        await eventually("both delivered", async () => {
          batch = [...batch, ...(await s.read(50, 200))];
          return batch.length >= 2;
        });
        await s.retryLater(batch, 300);
        const again: number[] = [];
        await eventually("both delivered again", async () => {
          const b = await s.read(50, 200);
          for (const d of b) again.push(d.deliveries);
          await s.ack(b);
          return again.length >= 2;
        });
        expect(again).toEqual([2, 2]);
      } finally {
        await s.close();
        await publisher.close();
      }
    }, TEST_TIMEOUT_MS);

    test("out-of-order and duplicate events never regress a value; duplicates and late events are counted", async () => {
      const [compiled] = rig.compile([source({ name: "ooo", mappings: [paymentsMapping({ idempotencyKey: "id" })] })]);
      const publisher = await openPublisher(compiled!);
      const ingest = await rig.start([compiled!]);
      try {
        const base = Date.now() - 60_000;
        const events: Array<Record<string, unknown>> = [];
        // 8 customers, 40 events each with distinct times, published shuffled, plus exact repeats and id repeats.
        for (let c = 0; c < 8; c++) for (let k = 0; k < 40; k++) events.push({ id: `e${c}-${k}`, customer: `ooo${c}`, amount: c * 1000 + k, count: k, chargeback: k % 2 === 0, ts: base + k * 10 });
        shuffle(events, 7);
        const repeats = events.slice(0, 30).map((e) => ({ ...e }));
        const sameIdNewerTime = events.slice(30, 40).map((e) => ({ ...e, ts: (e.ts as number) + 1, amount: -1 }));
        const all = [...events, ...repeats, ...sameIdNewerTime];
        for (let i = 0; i < all.length; i += 25) await publisher.publish(all.slice(i, i + 25).map(json));
        await eventually("every event consumed", () => {
          const s = ingest.status()[0]!;
          return s.written + s.duplicate + s.late === all.length;
        });
        const st = ingest.status()[0]!;
        expect(st.written + st.duplicate + st.late).toBe(all.length);
        // Every repeat carries an id already seen (10 of them with a newer time and a bogus amount); originals have distinct times, so they are written or late.
        expect(st.duplicate).toBe(40);
        expect(st.late).toBeGreaterThan(0);
        expect(st.deadLettered).toBe(0);
        for (let c = 0; c < 8; c++) {
          const row = await rig.row(`ooo${c}`);
          expect(row?.ts).toBe(base + 39 * 10);
          expect(row?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBe(c * 1000 + 39);
          expect(row?.values[rig.view.featureIndex.get("risk_score")!.index]).toBe(0.25);
        }
      } finally {
        await ingest.stop();
        await publisher.close();
      }
    }, TEST_TIMEOUT_MS);

    test("poison and malformed events land in dead letters with reason and path; replay after fixing the mapping writes them", async () => {
      const def = source({ name: "poison" });
      const [compiled] = rig.compile([def]);
      const publisher = await openPublisher(compiled!);
      const deadLetters = await openDeadLetters(compiled!);
      let ingest = await rig.start([compiled!]);
      try {
        const ts = Date.now() - 1000;
        await publisher.publish([
          json({ customer: "p1", amount: 10, count: 1, chargeback: false, ts }),
          json({ customer_id: "p2", amount: 20, count: 2, chargeback: false, ts }), // new upstream schema: renamed key
          json({ customer_id: "p3", amount: 30, count: 3, chargeback: true, ts }),
          new TextEncoder().encode("{not json"),
          json({ customer: "p4", amount: "lots", count: 1, chargeback: false, ts }),
          json({ customer: "p5", amount: 5, count: 1.5, chargeback: false, ts }),
        ]);
        await eventually("all consumed", () => ingest.status()[0]!.consumed === 6 && ingest.status()[0]!.deadLettered + ingest.status()[0]!.written === 6);
        expect(ingest.status()[0]!.deadLettered).toBe(5);
        const letters = await deadLetters.list(100);
        const summary = letters.map((l) => [l.reason, l.path]).sort();
        expect(summary).toEqual(
          [
            ["invalid_value", "amount"],
            ["invalid_value", "count"],
            ["missing_field", "customer"],
            ["missing_field", "customer"],
            ["undecodable", ""],
          ].sort(),
        );
        for (const l of letters) {
          expect(l.source).toBe("poison");
          expect(l.error.length).toBeGreaterThan(0);
          expect(l.origin.length).toBeGreaterThan(0);
        }
        expect(new TextDecoder().decode(letters.find((l) => l.reason === "undecodable")!.payload)).toBe("{not json");
        // A reason filter looks past older letters of other reasons (it was applied after the limit).
        const undecodable = await deadLetters.list(1, { reason: "undecodable" });
        expect(undecodable.map((l) => l.reason)).toEqual(["undecodable"]);
        expect(new TextDecoder().decode(undecodable[0]!.payload)).toBe("{not json");
        expect(await rig.row("p2")).toBeUndefined();

        // Dead-lettered messages are settled with the engine (XACK / term): nothing stays owed (lag sampled every 200 ms).
        await nothingOwed(ingest);
        expect(ingest.status()[0]!.lastError).toBeNull();

        // The fix: the mapping follows the upstream rename.
        await ingest.stop();
        const fixed = rig.compile([{ ...def, mappings: [paymentsMapping({ keys: { customer_id: "customer_id" } })] }]);
        ingest = await rig.start(fixed);
        // Another source sharing the stream shares its dead letters: its letter is neither listed for this one nor
        // replayed onto it (a replay wrote another source's event through this source's mapping, and lost its letter).
        const other = json({ customer_id: "zz", amount: 666, count: 1, chargeback: false, ts });
        await deadLetters.add([{ source: "other", reason: "missing_field", path: "customer", error: "missing", payload: other, origin: "0-1" }]);
        expect((await deadLetters.list(100, { source: "poison" })).length).toBe(5);
        const { replayed } = await replayDeadLetters(deadLetters, publisher, { limit: 100, source: "poison", reason: "missing_field" });
        expect(replayed.length).toBe(2);
        await eventually("replayed events written", async () => (await rig.row("p2")) !== undefined && (await rig.row("p3")) !== undefined);
        expect((await rig.row("p3"))?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBe(30);
        expect((await deadLetters.list(100, { source: "poison" })).map((l) => l.reason).sort()).toEqual(["invalid_value", "invalid_value", "undecodable"]);
        expect((await deadLetters.list(100, { source: "other" })).map((l) => new TextDecoder().decode(l.payload))).toEqual([new TextDecoder().decode(other)]);
        expect(await rig.row("zz")).toBeUndefined();
      } finally {
        await ingest.stop();
        await deadLetters.close();
        await publisher.close();
      }
    }, TEST_TIMEOUT_MS);

    test("an idempotency key that is not a string or integer dead-letters its event alone: the rest of the batch is written, nothing stays owed", async () => {
      // {"toString":1} made String() throw: the whole batch was retried forever (Redis) or dropped at the delivery limit (NATS).
      await withSource(source({ name: "badkey", mappings: [paymentsMapping({ idempotencyKey: "id" })] }), async ({ publisher, deadLetters, ingest }) => {
        // An empty dead-letter stream lists nothing (NATS reports first_seq 0 there, which the listing fetched).
        expect(await deadLetters.list(10)).toEqual([]);
        const ts = Date.now() - 1000;
        await publisher.publish([
          json({ customer: "k1", amount: 1, count: 1, chargeback: false, ts, id: { toString: 1 } }),
          json({ customer: "k2", amount: 2, count: 1, chargeback: false, ts, id: ["q", "r"] }),
          json({ customer: "k3", amount: 3, count: 1, chargeback: false, ts, id: "q,r" }),
        ]);
        await eventually("all consumed", () => ingest.status()[0]!.consumed === 3 && ingest.status()[0]!.deadLettered + ingest.status()[0]!.written === 3);
        expect((await deadLetters.list(100)).map((l) => [l.reason, l.path])).toEqual([
          ["invalid_value", "id"],
          ["invalid_value", "id"],
        ]);
        expect((await rig.row("k3"))?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBe(3);
        await nothingOwed(ingest);
        expect(ingest.status()[0]!.lastError).toBeNull();
      });
    }, TEST_TIMEOUT_MS);

    test("an event near the engine's largest message that fails mapping still gets its dead letter (cut to fit where the engine must), and its batch-mate is written", async () => {
      await withSource(source({ name: "huge" }), async ({ publisher, deadLetters, ingest }) => {
        const ts = Date.now() - 1000;
        // ~1 MB, just under NATS's default max_payload: its letter (payload + headers) would not fit whole.
        const huge = json({ amount: 1, count: 1, chargeback: false, ts, pad: "x".repeat(1_048_000 - 100) });
        await publisher.publish([huge, json({ customer: "h2", amount: 2, count: 1, chargeback: false, ts })]);
        await eventually("both consumed", () => ingest.status()[0]!.consumed >= 2 && ingest.status()[0]!.deadLettered === 1 && ingest.status()[0]!.written === 1);
        const [letter] = await deadLetters.list(10);
        expect([letter!.reason, letter!.path]).toEqual(["missing_field", "customer"]);
        // Whole where it fits (Redis), else cut and saying so (NATS).
        const cut = letter!.payload.length !== huge.length;
        if (cut) {
          expect(letter!.error).toContain(`payload cut from ${huge.length} to ${letter!.payload.length} bytes`);
          expect(letter!.cutFrom).toBe(huge.length);
        } else expect(letter!.cutFrom).toBeUndefined();
        expect((await rig.row("h2"))?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBe(2);
        await nothingOwed(ingest);
        // A cut payload is not the event: a replay keeps its letter and publishes nothing. It published the first
        // 1,040,384 bytes as the event, dead-lettered again as `undecodable` with no word of the cut, and deleted
        // the letter. A whole one is replayed (and dead-lettered again: the mapping still misses its customer).
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "huge" });
        expect([replayed.length, kept.map((l) => l.id)]).toEqual(cut ? [0, [letter!.id]] : [1, []]);
        await eventually("the replay handled", () => ingest.status()[0]!.deadLettered === (cut ? 1 : 2));
        const after = await deadLetters.list(10);
        expect(after.map((l) => [l.reason, l.path, l.payload.length])).toEqual([["missing_field", "customer", cut ? letter!.payload.length : huge.length]]);
        await nothingOwed(ingest);
      });
    }, TEST_TIMEOUT_MS);

    test("an event over maxEventBytes is dead-lettered too_large with its first 4 KiB, never written, and not replayed; its batch-mate is written", async () => {
      await withSource(source({ name: "oversized", maxEventBytes: 64 * 1024 }), async ({ publisher, deadLetters, ingest }) => {
        const ts = Date.now() - 1000;
        // A valid event but for its size: without a bound it was decoded, mapped and written (and a letter kept it whole).
        const big = json({ customer: "big", amount: 1, count: 1, chargeback: false, ts, pad: "y".repeat(200_000) });
        await publisher.publish([big, json({ customer: "small", amount: 2, count: 1, chargeback: false, ts })]);
        await eventually("both consumed", () => ingest.status()[0]!.consumed >= 2 && ingest.status()[0]!.deadLettered === 1 && ingest.status()[0]!.written === 1);
        expect(await rig.row("big")).toBeUndefined();
        expect((await rig.row("small"))?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBe(2);
        const [letter] = await deadLetters.list(10);
        expect([letter!.reason, letter!.payload.length, letter!.cutFrom]).toEqual(["too_large", 4096, big.length]);
        expect(Buffer.from(letter!.payload).equals(Buffer.from(big.subarray(0, 4096)))).toBe(true);
        expect(letter!.error).toContain("over maxEventBytes (65536)");
        expect(letter!.error).toContain(`${big.length} bytes`);
        await nothingOwed(ingest);
        expect(ingest.status()[0]!.lastError).toBeNull();
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "oversized" });
        expect([replayed.length, kept.map((l) => l.id)]).toEqual([0, [letter!.id]]);
      });
    }, TEST_TIMEOUT_MS);

    test("an event over a maxEventBytes below 4 KiB is kept whole: its letter is not marked cut and is replayed", async () => {
      await withSource(source({ name: "small-bound", maxEventBytes: 1024 }), async ({ publisher, deadLetters, ingest }) => {
        // 2,000 bytes over a 1 KiB bound: the letter's 4 KiB hold all of it. NATS marked it cut all the same (read
        // back as cutFrom 2001), so replay kept it for good, though the bound may have been raised since.
        const big = json({ customer: "over", amount: 1, count: 1, chargeback: false, ts: Date.now() - 1000, pad: "y".repeat(1900) });
        await publisher.publish([big]);
        await eventually("dead-lettered", () => ingest.status()[0]!.deadLettered === 1);
        const [letter] = await deadLetters.list(10);
        expect([letter!.reason, letter!.cutFrom, Buffer.from(letter!.payload).equals(Buffer.from(big))]).toEqual(["too_large", undefined, true]);
        expect(letter!.error).not.toContain("first");
        await nothingOwed(ingest);
        const { replayed, kept } = await replayDeadLetters(deadLetters, publisher, { limit: 10, source: "small-bound" });
        expect([replayed.map((l) => l.id), kept.length]).toEqual([[letter!.id], 0]);
        // Still over the bound: dead-lettered again, whole.
        await eventually("dead-lettered again", () => ingest.status()[0]!.deadLettered === 2);
      });
    }, TEST_TIMEOUT_MS);

    test("two sources with different schemas feeding one view converge to the newest value", async () => {
      const a = source({ name: "payments_json", format: "json" });
      const b = source({
        name: "payments_msgpack",
        format: "msgpack",
        mappings: [
          {
            featureView: "fraud_signals",
            keys: { customer_id: "payer.id" },
            features: { spend_1h: { path: "payer.spend_cents", scale: 0.01 }, txn_count_1h: "n", chargeback_flag: "cb" },
            eventTime: { path: "at", format: "rfc3339" },
            filter: { path: "kind", equals: "card" },
          },
        ],
      });
      const compiled = rig.compile([a, b]);
      const pa = await openPublisher(compiled[0]!);
      const pb = await openPublisher(compiled[1]!);
      const ingest = await rig.start(compiled);
      try {
        const base = Math.floor(Date.now() / 1000) * 1000 - 100_000;
        const expected = new Map<string, { ts: number; spend: number }>();
        const outA: Uint8Array[] = [];
        const outB: Uint8Array[] = [];
        for (let i = 0; i < 200; i++) {
          const customer = `two${i % 10}`;
          const ts = base + ((i * 7919) % 200) * 1000;
          const spend = i + 0.5;
          const prev = expected.get(customer);
          if (!prev || ts > prev.ts) expected.set(customer, { ts, spend });
          if (i % 2 === 0) outA.push(json({ customer, amount: spend, count: i, chargeback: false, ts }));
          else outB.push(encode({ kind: "card", payer: { id: customer, spend_cents: spend * 100 }, n: String(i), cb: 0, at: new Date(ts).toISOString() }));
        }
        outB.push(encode({ kind: "refund", payer: { id: "two0", spend_cents: 1 }, n: 1, cb: 1, at: new Date(base + 10_000_000).toISOString() }));
        await Promise.all([pa.publish(outA), pb.publish(outB)]);
        await eventually("both sources consumed", () => ingest.status().reduce((n, s) => n + s.written + s.duplicate + s.late + s.filtered, 0) === 201);
        const filtered = ingest.status().find((s) => s.source === "payments_msgpack")!.filtered;
        expect(filtered).toBe(1);
        for (const [customer, want] of expected) {
          const row = await rig.row(customer);
          expect(row?.ts).toBe(want.ts);
          expect(row?.values[rig.view.featureIndex.get("spend_1h")!.index]).toBeCloseTo(want.spend, 9);
        }
      } finally {
        await ingest.stop();
        await pa.close();
        await pb.close();
      }
    }, TEST_TIMEOUT_MS);
  });
}
