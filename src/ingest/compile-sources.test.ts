import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QuiverError } from "../errors/index.ts";
import { loadRegistryFile } from "../registry/index.ts";
import { loadSourcesFile } from "./compile-sources.ts";
import { compileSources } from "./read-sources.ts";
import { MappingError } from "./mapping.ts";

const registry = await loadRegistryFile("src/registry/example-registry.yaml");

function problems(input: unknown): string[] {
  try {
    compileSources(input, registry);
  } catch (e) {
    if (e instanceof QuiverError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

const redis = { url: "redis://127.0.0.1:1", stream: "s", group: "g" };
const mapping = { featureView: "fraud_signals", keys: { customer_id: "c" }, features: { spend_1h: "amount" }, eventTime: { path: "ts", format: "epoch_ms" } };

describe("sources file", () => {
  test("the example file compiles against the example registry: two sources feed fraud_signals", async () => {
    const sources = await loadSourcesFile("src/ingest/example-sources.yaml", registry);
    expect(sources.map((s) => [s.name, s.engine, s.format, s.mappings[0]!.view.name])).toEqual([
      ["payments_redis", "redis", "json", "fraud_signals"],
      ["payments_nats", "nats", "msgpack", "fraud_signals"],
    ]);
    expect(sources[0]!.redis).toMatchObject({ field: "data", claimIdleMs: 30_000, deadLetterStream: "payments:dead" });
    expect(sources[1]!.nats).toMatchObject({ ackWaitMs: 30_000, deadLetterStream: "PAYMENTS_DEAD" });
  });

  test("a sources file is read in a worker: not YAML, or the wrong shape, is invalid_sources naming the file or the path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quiver-sources-"));
    try {
      const bad = join(dir, "bad.yaml");
      const shape = join(dir, "shape.yaml");
      writeFileSync(bad, "sources: [\n");
      writeFileSync(shape, "sources:\n  - name: 1\n");
      await expect(loadSourcesFile(bad, registry)).rejects.toMatchObject({ code: "invalid_sources", message: expect.stringContaining(`${bad}: not valid YAML/JSON`) });
      await expect(loadSourcesFile(shape, registry)).rejects.toMatchObject({ code: "invalid_sources" });
      await expect(loadSourcesFile(shape, registry)).rejects.toThrow(/sources\[0\]\.name/);
      // In this thread, the same.
      await expect(loadSourcesFile(shape, registry, { worker: false })).rejects.toThrow(/sources\[0\]\.name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("every problem is reported at once with its path", () => {
    const got = problems({
      sources: [
        {
          name: "a",
          engine: "redis",
          nats: { servers: "x", stream: "S", consumer: "c", subject: "s" },
          mappings: [
            { ...mapping, featureView: "nope" },
            { ...mapping, keys: { driver_id: "d" }, features: { spend_1h: "a", nope: "b", chargeback_flag: { path: "x", scale: 2 }, risk_score: { value: "high" } } },
          ],
        },
        { name: "a", engine: "nats", mappings: [mapping] },
      ],
    });
    expect(got).toEqual([
      'sources[0].redis: is required when engine is "redis"',
      'sources[0].nats: is for engine "nats"; this source\'s engine is "redis"',
      expect.stringContaining('sources[0].mappings[0].featureView: unknown feature view "nope"'),
      'sources[0].mappings[1].keys: missing join key "customer_id" of view "fraud_signals"',
      'sources[0].mappings[1].keys.driver_id: view "fraud_signals" has no join key "driver_id"',
      expect.stringContaining('sources[0].mappings[1].features.nope: view "fraud_signals" has no feature "nope"'),
      "sources[0].mappings[1].features.chargeback_flag.scale: feature \"chargeback_flag\" is bool; only numeric features scale",
      'sources[0].mappings[1].features.risk_score.value: expected a number, got string "high"',
      'sources[1].name: duplicate source "a"',
      'sources[1].nats: is required when engine is "nats"',
    ]);
  });

  test("dedupMaxBytes: 128 MiB by default, a byte count of at least 1 KiB when given", () => {
    const compiled = (extra: Record<string, unknown>) => compileSources({ sources: [{ name: "a", engine: "redis", redis, mappings: [mapping], ...extra }] }, registry)[0]!;
    expect(compiled({}).dedupMaxBytes).toBe(128 * 1024 * 1024);
    expect(compiled({ dedupMaxBytes: 4096 }).dedupMaxBytes).toBe(4096);
    for (const bad of [0, 512, 1.5, "64MB", -1]) {
      expect(problems({ sources: [{ name: "a", engine: "redis", redis, mappings: [mapping], dedupMaxBytes: bad }] })[0]).toMatch(/^sources\[0\]\.dedupMaxBytes: /);
    }
  });

  test("redis.claimIdle: 30 s by default, at least 1 s when given (0 took every pending entry of every other consumer)", () => {
    const compiled = (claimIdle?: string | number) => compileSources({ sources: [{ name: "a", engine: "redis", redis: { ...redis, ...(claimIdle === undefined ? {} : { claimIdle }) }, mappings: [mapping] }] }, registry)[0]!;
    expect(compiled().redis!.claimIdleMs).toBe(30_000);
    expect(compiled("1s").redis!.claimIdleMs).toBe(1000);
    for (const bad of [0, "0s", "500ms", 0.5]) {
      expect(problems({ sources: [{ name: "a", engine: "redis", redis: { ...redis, claimIdle: bad }, mappings: [mapping] }] })[0]).toMatch(/^sources\[0\]\.redis\.claimIdle: must be at least 1s/);
    }
  });


  test("deadLetters: 100,000 letters and 7 days by default; an age of 0 (none) or at least 1m; sources sharing a dead-letter stream must agree", () => {
    const source = (name: string, extra: Record<string, unknown> = {}) => ({ name, engine: "redis", redis, mappings: [mapping], ...extra });
    const compiled = (extra: Record<string, unknown>) => compileSources({ sources: [source("a", extra)] }, registry)[0]!;
    expect(compiled({}).deadLetterRetention).toEqual({ maxLetters: 100_000, maxAgeMs: 7 * 24 * 3600_000 });
    expect(compiled({ deadLetters: { maxLetters: 10, maxAge: "2h" } }).deadLetterRetention).toEqual({ maxLetters: 10, maxAgeMs: 7_200_000 });
    expect(compiled({ deadLetters: { maxAge: 0 } }).deadLetterRetention).toEqual({ maxLetters: 100_000, maxAgeMs: 0 });
    expect(problems({ sources: [source("a", { deadLetters: { maxAge: "30s" } })] })).toEqual([expect.stringMatching(/^sources\[0\]\.deadLetters\.maxAge: must be 0 \(no age limit\) or at least 1m/)]);
    for (const bad of [{ maxLetters: 0 }, { maxLetters: 1.5 }, { maxAge: "soon" }, { other: 1 }]) {
      expect(problems({ sources: [source("a", { deadLetters: bad })] })[0]).toMatch(/^sources\[0\]\.deadLetters/);
    }
    // Two sources on one stream (each through its own group) write one dead-letter stream (<stream>:dead): each add
    // trims it to its own limits.
    const other = { redis: { ...redis, group: "g2" } };
    const shared = problems({ sources: [source("a"), source("b", { ...other, deadLetters: { maxLetters: 5 } })] });
    expect(shared).toEqual([expect.stringMatching(/^sources\[1\]\.deadLetters: shares its dead-letter stream with source "a"/)]);
    expect(problems({ sources: [source("a", { deadLetters: { maxLetters: 5 } }), source("b", { ...other, deadLetters: { maxLetters: 5 } })] })).toEqual([]);
    expect(problems({ sources: [source("a"), source("b", { redis: { ...other.redis, deadLetterStream: "elsewhere" }, deadLetters: { maxLetters: 5 } })] })).toEqual([]);
  });

  test("two sources may not read one stream through one group or durable consumer: each got only part of its events", () => {
    // Real servers, 100 events on one stream feeding two views through one group: 59 rows in one view, 41 in the
    // other (JetStream: 44 and 56), every event acknowledged, both consumers `running`.
    const r = (name: string, extra: Record<string, unknown> = {}) => ({ name, engine: "redis", redis: { ...redis, ...extra }, mappings: [mapping] });
    expect(problems({ sources: [r("a"), r("b")] })).toEqual([
      expect.stringMatching(/^sources\[1\]\.redis\.group: reads stream "s" through group "g", as source "a" does: it hands each message to one of its consumers/),
    ]);
    expect(problems({ sources: [r("a"), r("b", { group: "g2" })] })).toEqual([]);
    expect(problems({ sources: [r("a"), r("b", { stream: "t" })] })).toEqual([]);
    const n = (name: string, extra: Record<string, unknown> = {}) => ({ name, engine: "nats", nats: { servers: "nats://127.0.0.1:1", stream: "S", consumer: "quiver", subject: "s.events", ...extra }, mappings: [mapping] });
    expect(problems({ sources: [n("a"), n("b")] })).toEqual([expect.stringMatching(/^sources\[1\]\.nats\.consumer: reads stream "S" through durable consumer "quiver", as source "a" does/)]);
    expect(problems({ sources: [n("a"), n("b", { consumer: "other", subject: "s.other" })] })).toEqual([]);
  });

  test("maxEventBytes: 1 MiB unless set, from 1 KiB to 64 MiB, a bad value named with its path", () => {
    const r = (extra: Record<string, unknown> = {}) => ({ name: "a", engine: "redis", redis, mappings: [mapping], ...extra });
    const n = (extra: Record<string, unknown> = {}) => ({ name: "b", engine: "nats", nats: { servers: "nats://127.0.0.1:1", stream: "S", consumer: "c", subject: "s.b" }, mappings: [mapping], ...extra });
    const [a, b] = compileSources({ sources: [r(), n({ maxEventBytes: 4096 })] }, registry);
    expect([a!.redis!.maxEventBytes, b!.nats!.maxEventBytes]).toEqual([1 << 20, 4096]);
    expect(problems({ sources: [r({ maxEventBytes: 100 })] })).toEqual([expect.stringMatching(/^sources\[0\]\.maxEventBytes: must be from 1024 \(1 KiB\) to 67108864 \(64 MiB.*got 100/)]);
    expect(problems({ sources: [r({ maxEventBytes: 65 << 20 })] })[0]).toMatch(/^sources\[0\]\.maxEventBytes: must be from 1024/);
    expect(problems({ sources: [r({ maxEventBytes: 1.5 })] })[0]).toMatch(/^sources\[0\]\.maxEventBytes/);
    expect(problems({ sources: [r({ maxEventBytes: "1MB" })] })[0]).toMatch(/^sources\[0\]\.maxEventBytes/);
  });

  test("one server spelt two ways is one server: the group, durable and dead-letter checks see through the spelling", () => {
    // Compared as text, each pair below was two servers and the file was accepted: two sources through one group on
    // one stream, each getting part of its events.
    const r = (name: string, url: string, extra: Record<string, unknown> = {}) => ({ name, engine: "redis", redis: { url, stream: "s", group: "g", ...extra }, mappings: [mapping] });
    const same = [
      ["redis://localhost:6379", "redis://127.0.0.1:6379/0"],
      ["redis://127.0.0.1", "redis://127.0.0.1:6379"],
      ["redis://127.0.0.1:6379/", "redis://LOCALHOST:6379/0"],
      ["redis://user:secret@127.0.0.1:6380", "rediss://127.0.0.1:6380?db=0"],
      ["127.0.0.1:6379", "redis://[::1]:6379"],
      ["redis://cache.internal:6379/2", "redis://Cache.Internal:6379/02"],
      // IPv4-mapped loopback (URL writes it ::ffff:7f00:1) and a fully qualified localhost.
      ["redis://[::ffff:127.0.0.1]:6379", "redis://127.0.0.1"],
      ["redis://localhost.:6379", "redis://127.0.0.1"],
      // A port alone: ioredis connects to it on localhost.
      ["6380", "redis://127.0.0.1:6380/0"],
    ];
    for (const [a, b] of same) {
      expect([a, b, problems({ sources: [r("a", a!), r("b", b!)] })]).toEqual([a, b, [expect.stringMatching(/^sources\[1\]\.redis\.group: reads stream "s" through group "g", as source "a" does \(on the same server: /)]]);
    }
    // The message names both spellings, without their passwords (it goes to logs).
    expect(problems({ sources: [r("a", "redis://user:secret@127.0.0.1:6380"), r("b", "redis://:pa55@localhost:6380/0")] })[0]).toContain(
      '(on the same server: "redis://user:***@127.0.0.1:6380" and "redis://:***@localhost:6380/0")',
    );
    // Another port, database or host is another server.
    for (const [a, b] of [
      ["redis://127.0.0.1:6379", "redis://127.0.0.1:6380"],
      ["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"],
      ["redis://127.0.0.1", "redis://10.0.0.1"],
      ["redis://127.0.0.1?db=3", "redis://127.0.0.1"],
    ]) {
      expect([a, b, problems({ sources: [r("a", a!), r("b", b!)] })]).toEqual([a, b, []]);
    }
    // The dead-letter check: a's stream is b's default dead-letter stream, on one server spelt two ways.
    expect(problems({ sources: [r("a", "redis://localhost", { stream: "s:dead" }), r("b", "redis://127.0.0.1:6379/0")] })).toEqual([
      expect.stringMatching(/^sources\[1\]\.redis\.deadLetterStream: "s:dead" \(the default for stream "s"\) is the stream source "a" reads/),
    ]);
    // NATS: scheme, default port 4222, loopback; a seed list that shares a server names the same cluster.
    const n = (name: string, servers: string) => ({ name, engine: "nats", nats: { servers, stream: "S", consumer: "quiver", subject: "s.events" }, mappings: [mapping] });
    for (const [a, b] of [
      ["nats://localhost:4222", "127.0.0.1"],
      ["nats://127.0.0.1", "tls://127.0.0.1:4222"],
      ["nats://n1:4222,nats://n2:4222", "nats://n2"],
      ["nats://[::ffff:127.0.0.1]:4222", "nats://localhost"],
    ]) {
      expect([a, b, problems({ sources: [n("a", a!), n("b", b!)] })]).toEqual([a, b, [expect.stringMatching(/^sources\[1\]\.nats\.consumer: reads stream "S" through durable consumer "quiver", as source "a" does/)]]);
    }
    expect(problems({ sources: [n("a", "nats://127.0.0.1:4222"), n("b", "nats://127.0.0.1:4223")] })).toEqual([]);
  });

  test("a dead-letter stream may not be a stream a source reads: its letters came back as events without end", () => {
    // On Redis, one bad event on such a source became 3,332 letters in 3 s, each read back as another bad event; the
    // letters' retention (XTRIM, JetStream's limits) would trim the source stream's unread events.
    const source = (name: string, r: Record<string, unknown> = {}) => ({ name, engine: "redis", redis: { ...redis, ...r }, mappings: [mapping] });
    expect(problems({ sources: [source("a", { deadLetterStream: "s" })] })).toEqual([
      expect.stringMatching(/^sources\[0\]\.redis\.deadLetterStream: "s" is the stream source "a" reads: its letters would be read back as events/),
    ]);
    // Another source's stream on the same server, named outright or by the default `<stream>:dead`.
    expect(problems({ sources: [source("a", { stream: "s:dead" }), source("b")] })).toEqual([
      expect.stringMatching(/^sources\[1\]\.redis\.deadLetterStream: "s:dead" \(the default for stream "s"\) is the stream source "a" reads/),
    ]);
    // The same stream name on another server is another stream.
    expect(problems({ sources: [source("a", { stream: "s:dead", url: "redis://127.0.0.1:2" }), source("b")] })).toEqual([]);
    const nats = (name: string, n: Record<string, unknown> = {}) => ({ name, engine: "nats", nats: { servers: "nats://127.0.0.1:1", stream: "S", consumer: name, subject: `s.${name}`, ...n }, mappings: [mapping] });
    expect(problems({ sources: [nats("a", { deadLetterStream: "S" })] })).toEqual([expect.stringMatching(/^sources\[0\]\.nats\.deadLetterStream: "S" is the stream source "a" reads/)]);
    expect(problems({ sources: [nats("a"), nats("b", { stream: "S_DEAD", subject: "dead.b" })] })).toEqual([
      expect.stringMatching(/^sources\[0\]\.nats\.deadLetterStream: "S_DEAD" \(the default for stream "S"\) is the stream source "b" reads/),
    ]);
  });
  test("structural errors name the field", () => {
    expect(problems({ sources: [{ name: "a", engine: "kafka", mappings: [] }] })[0]).toMatch(/^sources\[0\]\.engine: /);
    expect(problems({ sources: [{ name: "a", engine: "redis", redis, mappings: [{ ...mapping, eventTime: { path: "ts", format: "epoch_ns" } }] }] })[0]).toMatch(
      /^sources\[0\]\.mappings\[0\]\.eventTime\.format: /,
    );
  });

  test("mappings rename, coerce, scale, nest, take constants and parse every time format", () => {
    const [source] = compileSources(
      {
        sources: [
          {
            name: "m",
            engine: "redis",
            redis,
            mappings: [
              {
                featureView: "fraud_signals",
                keys: { customer_id: "who.id" },
                features: { spend_1h: { path: "cents", scale: 0.01 }, txn_count_1h: "n", chargeback_flag: "cb", risk_score: { value: 0.5 }, device_ids: "devices" },
                eventTime: { path: "at", format: "epoch_us" },
                idempotencyKey: "eid",
              },
            ],
          },
        ],
      },
      registry,
    );
    const m = source!.mappings[0]!;
    const mapped = m.map({ who: { id: 42 }, cents: "1250", n: "7", cb: 1, devices: ["d1", 2], at: 1_700_000_000_123_456, eid: 9 });
    expect(mapped.row).toEqual({ customer_id: "42", spend_1h: 12.5, txn_count_1h: 7, chargeback_flag: true, risk_score: 0.5, device_ids: ["d1", "2"], event_timestamp: 1_700_000_000_123 });
    expect(mapped.idempotencyKey).toBe("9");
    const failure = (payload: unknown): MappingError => {
      try {
        m.map(payload);
      } catch (e) {
        if (e instanceof MappingError) return e;
        throw e;
      }
      throw new Error("mapped without error");
    };
    const missing = failure({ cents: 1, at: 1 });
    expect([missing.reason, missing.path]).toEqual(["missing_field", "who.id"]);
    const wrong = failure({ who: { id: "x" }, n: 1.5, at: 1 });
    expect([wrong.reason, wrong.path]).toEqual(["invalid_value", "n"]);
    // Idempotency keys: strings and integers; anything else is the event's dead letter, not a thrown TypeError
    // (an object whose toString is not callable stopped the consumer) and not a colliding "[object Object]" or "q,r".
    expect(m.map({ who: { id: 1 }, at: 1, eid: "e-1" }).idempotencyKey).toBe("e-1");
    for (const eid of [{ toString: 1 }, { a: 1 }, ["q", "r"], 1.5, 2 ** 60, "", "k".repeat(257), true]) {
      const e = failure({ who: { id: 1 }, at: 1, eid });
      expect([e.reason, e.path]).toEqual(["invalid_value", "eid"]);
    }
    // A string join key from a number only when its digits are exact: 12345678901234567890 and ...891 were one entity.
    expect(m.map({ who: { id: 9007199254740991 }, at: 1 }).row.customer_id).toBe("9007199254740991");
    const big = failure({ who: JSON.parse('{"id":12345678901234567890}'), at: 1 }); // as a JSON payload parses it
    expect([big.reason, big.path]).toEqual(["invalid_value", "who.id"]);
    expect(big.message).toContain("send it as a string");
  });
});
