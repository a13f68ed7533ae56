import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Decoder, Encoder } from "@msgpack/msgpack";
import Redis from "ioredis";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { parseJsonExact } from "../src/text/exact-json.ts";
import { type Clients, connect, unaryCall } from "./support/grpc-client.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * int64 over its whole range, end to end: -2^63, 2^63 − 1, 2^53 + 1 and a safe
 * value pushed through every write edge (HTTP JSON numbers and decimal
 * strings, HTTP MessagePack, Feast /push and /write-to-online-store, gRPC Push
 * of quiver.v1 and of Feast's Python service, typed and as text, Feast's
 * WriteToOnlineStore), under join keys past 2^53, and read back exactly
 * through every read edge (v1 JSON one entity and a batch, v1 MessagePack,
 * Feast JSON with the id as a JSON number, gRPC Lookup of both services) — on the embedded store, and on a
 * Redis shard behind L1 and L2 caches (read twice: the second from cache).
 * Then what is refused, naming the field and the digits as sent.
 */

setDefaultTimeout(60_000);

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const ABOVE_SAFE = 2n ** 53n + 1n;
const VALUES: readonly bigint[] = [MIN, MAX, ABOVE_SAFE, 1001n];
const DIGITS = VALUES.map(String);
/** Join keys past 2^53: account ids from here. */
const BASE = 2n ** 53n + 1000n;

const REGISTRY = `project: int64_range
entities:
  - name: account
    joinKeys:
      - { name: account_id, type: int64 }
featureViews:
  - name: ledger
    entities: [account]
    maxAge: 7d
    features:
      - { name: n, type: int64 }
      - { name: ns, type: "int64[]" }
      - { name: f, type: float64 }
`;

interface Served {
  quiver: Quiver;
  http: ReturnType<typeof Bun.serve>;
  url: string;
  clients: Clients;
}

const dir = mkdtempSync(join(tmpdir(), "quiver-int64-"));
const registryPath = join(dir, "registry.yaml");
writeFileSync(registryPath, REGISTRY);
let shard: RedisProcess;
let l2: RedisProcess;
const served: Record<string, Served> = {};

async function serve(flags: string[]): Promise<Served> {
  const quiver = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "0", "--max-rows", "500", "--max-body-bytes", "65536", ...flags], {}));
  const http = Bun.serve({ hostname: "127.0.0.1", port: 0, routes: quiver.http.nativeRoutes, fetch: quiver.http.app.fetch });
  const port = await quiver.grpc!.listen("127.0.0.1", 0);
  return { quiver, http, url: `http://127.0.0.1:${http.port}`, clients: connect(`127.0.0.1:${port}`) };
}

beforeAll(async () => {
  [shard, l2] = await Promise.all([startRedis(), startRedis()]);
  const topologyPath = join(dir, "topology.yaml");
  writeFileSync(topologyPath, ["shards:", "  - name: beta", `    primary: ${shard.address}`, ""].join("\n"));
  served.embedded = await serve([]);
  served.redis = await serve(["--topology", topologyPath, "--write-acks", "0", "--cache-l1", "on", "--cache-l2", l2.address]);
}, 120_000);

afterAll(async () => {
  for (const s of Object.values(served)) {
    s.clients.close();
    s.http.stop(true);
    await s.quiver.grpc!.drain(2000);
    await s.quiver.close();
  }
  await Promise.all([shard?.stop(), l2?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const wide = new Encoder({ useBigInt64: true });
const wideDecoder = new Decoder({ useBigInt64: true });
/** A bigint as the canonical in-memory form keeps it (a number while safe), for MessagePack encoding. */
const canonical = (v: bigint): number | bigint => (v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v);
const idOf = (edge: number, k: number): bigint => BASE + BigInt(edge * 10 + k);
const list = DIGITS.join(",");

/** One write edge: pushes value k under account id `id`, answering the status (HTTP) or the error (gRPC). */
type Push = (s: Served, id: bigint, k: number) => Promise<void>;

async function httpPush(s: Served, path: string, body: string | Uint8Array, type = "application/json"): Promise<void> {
  const res = await fetch(`${s.url}${path}`, { method: "POST", body, headers: { "content-type": type } });
  expect({ path, status: res.status, body: res.status === 200 ? "" : await res.text() }).toEqual({ path, status: 200, body: "" });
}

async function grpcPush(client: Clients[keyof Clients], method: string, request: unknown): Promise<void> {
  const { error } = await unaryCall(client as never, method, request);
  expect({ method, error: error?.message }).toEqual({ method, error: undefined });
}

const typedRow = (id: bigint, k: number) => ({
  account_id: { int64_val: String(id) },
  n: { int64_val: DIGITS[k]! },
  ns: { int64_list_val: { val: DIGITS } },
  f: { double_val: 0.5 },
});

const WRITES: readonly [string, Push][] = [
  ["POST /v1/push, JSON numbers", (s, id, k) => httpPush(s, "/v1/push", `{"featureView":"ledger","rows":[{"account_id":${id},"n":${DIGITS[k]},"ns":[${list}],"f":0.5}]}`)],
  ["POST /v1/push, decimal strings", (s, id, k) => httpPush(s, "/v1/push", JSON.stringify({ featureView: "ledger", rows: [{ account_id: String(id), n: DIGITS[k], ns: DIGITS, f: 0.5 }] }))],
  [
    "POST /v1/push, MessagePack",
    (s, id, k) => httpPush(s, "/v1/push", wide.encode({ featureView: "ledger", rows: [{ account_id: id, n: canonical(VALUES[k]!), ns: VALUES.map(canonical), f: 0.5 }] }), "application/msgpack"),
  ],
  ["POST /push (Feast)", (s, id, k) => httpPush(s, "/push", `{"push_source_name":"ledger_push_source","df":{"account_id":[${id}],"n":[${DIGITS[k]}],"ns":[[${list}]],"f":[0.5]},"to":"online"}`)],
  ["POST /write-to-online-store (Feast)", (s, id, k) => httpPush(s, "/write-to-online-store", `{"feature_view_name":"ledger","df":{"account_id":["${id}"],"n":["${DIGITS[k]}"],"ns":[[${list}]],"f":[0.5]}}`)],
  ["gRPC quiver.v1 Push", (s, id, k) => grpcPush(s.clients.quiver, "Push", { feature_view: "ledger", rows: [{ values: typedRow(id, k) }] })],
  ["gRPC Feast Push, typed_features", (s, id, k) => grpcPush(s.clients.feastPython, "Push", { stream_feature_view: "ledger", typed_features: typedRow(id, k), to: "online" })],
  ["gRPC Feast Push, text features", (s, id, k) => grpcPush(s.clients.feastPython, "Push", { stream_feature_view: "ledger", features: { account_id: String(id), n: DIGITS[k], ns: `[${list}]`, f: "0.5" }, to: "online" })],
  ["gRPC Feast WriteToOnlineStore", (s, id, k) => grpcPush(s.clients.feastPython, "WriteToOnlineStore", { feature_view_name: "ledger", typed_features: typedRow(id, k) })],
];

/** What every read edge must give for account `id`: [n, ns] as decimal text. */
type Read = (s: Served, id: bigint) => Promise<[string, string[]]>;

async function httpJson(s: Served, path: string, body: string): Promise<{ text: string; value: unknown }> {
  const res = await fetch(`${s.url}${path}`, { method: "POST", body, headers: { "content-type": "application/json" } });
  const text = await res.text();
  expect({ path, status: res.status, text: res.status === 200 ? "" : text }).toEqual({ path, status: 200, text: "" });
  return { text, value: parseJsonExact(text) };
}

const asText = (v: unknown): string => String(v);
const FEATURES = '["ledger:n","ledger:ns"]';

const READS: readonly [string, Read][] = [
  [
    "POST /v1/lookup JSON, one entity (id a decimal string)",
    async (s, id) => {
      const { text, value } = await httpJson(s, "/v1/lookup", `{"features":${FEATURES},"entities":[{"account_id":"${id}"}]}`);
      const row = (value as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]!;
      expect(row.statuses).toEqual(["PRESENT", "PRESENT"]);
      // Integer literals in the text, never strings or rounded floats.
      expect(text).toContain(`[${list}]`);
      return [asText(row.values[0]), (row.values[1] as unknown[]).map(asText)];
    },
  ],
  [
    "POST /v1/lookup JSON, a batch of two (the id, and a safe id with no row)",
    async (s, id) => {
      const { value } = await httpJson(s, "/v1/lookup", `{"features":${FEATURES},"entities":{"account_id":["${id}",7]}}`);
      const rows = (value as { rows: { values: unknown[]; statuses: string[] }[] }).rows;
      expect(rows[1]!.statuses).toEqual(["NOT_FOUND", "NOT_FOUND"]);
      return [asText(rows[0]!.values[0]), (rows[0]!.values[1] as unknown[]).map(asText)];
    },
  ],
  [
    "POST /v1/lookup, MessagePack request (id a uint 64) and answer",
    async (s, id) => {
      const body = wide.encode({ features: ["ledger:n", "ledger:ns"], entities: [{ account_id: id }] });
      const res = await fetch(`${s.url}/v1/lookup`, { method: "POST", body, headers: { "content-type": "application/msgpack", accept: "application/msgpack" } });
      expect(res.status).toBe(200);
      const answer = wideDecoder.decode(new Uint8Array(await res.arrayBuffer())) as { rows: { values: unknown[] }[] };
      const values = answer.rows[0]!.values;
      return [asText(values[0]), (values[1] as unknown[]).map(asText)];
    },
  ],
  [
    "POST /get-online-features (Feast JSON; id a JSON number, echoed exactly)",
    async (s, id) => {
      const { text, value } = await httpJson(s, "/get-online-features", `{"features":${FEATURES},"entities":{"account_id":[${id}]}}`);
      const results = (value as { results: { values: unknown[]; statuses: string[] }[] }).results;
      expect(text).toContain(`"values":[${id}]`);
      expect(results[1]!.statuses).toEqual(["PRESENT"]);
      return [asText(results[1]!.values[0]), (results[2]!.values[0] as unknown[]).map(asText)];
    },
  ],
  [
    "gRPC quiver.v1 Lookup",
    async (s, id) => {
      const { response, error } = await unaryCall<{ columns: { int64_values: string[]; int64_list_values: { val: string[] }[]; statuses: string[] }[] }>(s.clients.quiver, "Lookup", {
        features: ["ledger:n", "ledger:ns"],
        entities: [{ name: "account_id", int64_values: [String(id)] }],
      });
      expect(error).toBeUndefined();
      const [n, ns] = response!.columns;
      expect(n!.statuses).toEqual(["PRESENT"]);
      return [n!.int64_values[0]!, ns!.int64_list_values[0]!.val];
    },
  ],
  [
    "gRPC Feast GetOnlineFeatures",
    async (s, id) => {
      const { response, error } = await unaryCall<{ results: { values: { int64_val?: string; int64_list_val?: { val: string[] } }[]; statuses: string[] }[] }>(s.clients.feast, "GetOnlineFeatures", {
        features: { val: ["ledger:n", "ledger:ns"] },
        entities: { account_id: { val: [{ int64_val: String(id) }] } },
      });
      expect(error).toBeUndefined();
      const r = response!.results;
      expect(r[0]!.values[0]!.int64_val).toBe(String(id));
      return [r[1]!.values[0]!.int64_val!, r[2]!.values[0]!.int64_list_val!.val];
    },
  ],
];

for (const store of ["embedded", "redis"] as const) {
  describe(`int64 round trips (${store === "embedded" ? "embedded arena store" : "Redis shard behind L1 and L2"})`, () => {
    WRITES.forEach(([write, push], e) => {
      test(`${write}: -2^63, 2^63-1, 2^53+1 and a safe value read back exactly through every read edge`, async () => {
        const s = served[store]!;
        for (let k = 0; k < VALUES.length; k++) await push(s, idOf(e, k), k);
        if (store === "redis") {
          // The shard holds the row as MessagePack with int 64 / uint 64 for the big values (after the 8-byte event time).
          const redis = new Redis({ host: shard.host, port: shard.port, lazyConnect: true });
          try {
            const keys = await redis.keys(`*ledger@1/account_id=i${idOf(e, 0)}`);
            expect(keys.length).toBe(1);
            const bytes = (await redis.getBuffer(keys[0]!))!;
            expect([...bytes.subarray(8, 11)]).toEqual([0x93, 0xd3, 0x80]);
            expect(wideDecoder.decode(bytes.subarray(8))).toEqual([MIN, VALUES.map(canonical), 0.5]);
          } finally {
            redis.disconnect();
          }
        }
        // Redis: the first pass reads the shard (and fills the caches), the second reads the caches.
        for (const pass of store === "redis" ? [1, 2] : [1]) {
          for (let k = 0; k < VALUES.length; k++) {
            for (const [read, get] of READS) {
              const got = await get(s, idOf(e, k));
              expect({ pass, k, read, got }).toEqual({ pass, k, read, got: [DIGITS[k]!, DIGITS] });
            }
          }
        }
        if (store === "redis") {
          // The reads went through the caches: L1 holds rows, and so does L2 (another Redis).
          const state = s.quiver.cache!.state() as { l1: { entries: number } };
          expect(state.l1.entries).toBeGreaterThan(0);
          const cache = new Redis({ host: l2.host, port: l2.port, lazyConnect: true });
          try {
            expect(await cache.dbsize()).toBeGreaterThan(0);
          } finally {
            cache.disconnect();
          }
        }
      });
    });
  });
}

describe("refused: beyond int64 and non-integers, naming the field and the digits as sent", () => {
  const http = async (path: string, body: string | Uint8Array, type = "application/json") => {
    const res = await fetch(`${served.embedded!.url}${path}`, { method: "POST", body, headers: { "content-type": type } });
    return { status: res.status, text: await res.text() };
  };
  const row = (fields: string) => `{"featureView":"ledger","rows":[{"account_id":1,${fields}}]}`;

  test("HTTP pushes: 400 with the path and the value's digits", async () => {
    const cases: [string | Uint8Array, string, string?][] = [
      [row(`"n":9223372036854775808`), "rows[0].n: expected int64, out of int64's range [-2^63, 2^63 − 1]: 9223372036854775808"],
      [row(`"n":-9223372036854775809`), "rows[0].n: expected int64, out of int64's range [-2^63, 2^63 − 1]: -9223372036854775809"],
      [row(`"n":"18446744073709551616"`), `rows[0].n: expected int64, out of int64's range [-2^63, 2^63 − 1]: \\"18446744073709551616\\"`],
      [row(`"ns":[1,9223372036854775808]`), "rows[0].ns: expected int64[], element 1 is out of int64's range [-2^63, 2^63 − 1]: 9223372036854775808"],
      [row(`"n":1.5`), "rows[0].n: expected int64 (integers in [-2^63, 2^63 − 1], as numbers or decimal strings), got number 1.5"],
      [row(`"n":"12abc"`), `rows[0].n: expected int64 (integers in [-2^63, 2^63 − 1], as numbers or decimal strings), got string \\"12abc\\"`],
      [wide.encode({ featureView: "ledger", rows: [{ account_id: 1, n: 2n ** 64n - 1n }] }), "rows[0].n: expected int64, out of int64's range [-2^63, 2^63 − 1]: 18446744073709551615", "application/msgpack"],
      [`{"featureView":"ledger","rows":[{"account_id":9223372036854775808,"n":1}]}`, "rows[0].account_id: int64 out of range: 9223372036854775808"],
    ];
    for (const [body, message, type] of cases) {
      const res = await http("/v1/push", body, type);
      expect({ status: res.status, message: res.text.includes(message) ? message : res.text }).toEqual({ status: 400, message });
    }
    const feast = await http("/push", `{"push_source_name":"ledger","df":{"account_id":[1],"n":[9223372036854775808]}}`);
    expect(feast.status).toBe(400);
    expect(JSON.parse(feast.text)).toEqual({ error: "df.n[0]: expected int64, out of int64's range [-2^63, 2^63 − 1]: 9223372036854775808", status_code: 400 });
  });

  test("v1 JSON lookups keep Bun's native parse: a join key past 2^53 as a JSON number is refused, saying why (not with rounded digits as its own)", async () => {
    const res = await http("/v1/lookup", `{"features":["ledger:n"],"entities":[{"account_id":9007199254740993}]}`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).error).toMatchObject({
      code: "invalid_entity",
      path: "entities[0].account_id",
      message: "entities[0].account_id: an integer past 2^53 sent as a JSON number arrives rounded (read as 9007199254740992); send an int64 this large as a decimal string (or in MessagePack)",
    });
  });

  test("lookups: a join key beyond int64 is a 400 with its digits, not JSON.parse's rounding", async () => {
    const res = await http("/get-online-features", `{"features":["ledger:n"],"entities":{"account_id":[9223372036854775808]}}`);
    expect(res.status).toBe(400);
    expect(res.text).toContain("int64 out of range: 9223372036854775808");
    const v1 = await http("/v1/lookup", `{"features":["ledger:n"],"entities":[{"account_id":"-9223372036854775809"}]}`);
    expect(v1.status).toBe(400);
    expect(v1.text).toContain("entities[0].account_id: int64 out of range: -9223372036854775809");
  });

  test("gRPC pushes: INVALID_ARGUMENT naming the field and the digits", async () => {
    const s = served.embedded!;
    const quiver = await unaryCall(s.clients.quiver, "Push", { feature_view: "ledger", rows: [{ values: { account_id: { int64_val: "1" }, n: { string_val: "9223372036854775808" } } }] });
    expect(quiver.error?.code).toBe(3);
    expect(quiver.error?.details).toContain('n: expected int64, out of int64\'s range [-2^63, 2^63 − 1]: "9223372036854775808"');
    const text = await unaryCall(s.clients.feastPython, "Push", { stream_feature_view: "ledger", features: { account_id: "1", n: "-9223372036854775809" }, to: "online" });
    expect(text.error?.code).toBe(3);
    expect(text.error?.details).toContain('out of int64\'s range [-2^63, 2^63 − 1]: "-9223372036854775809"');
    const frac = await unaryCall(s.clients.feastPython, "Push", { stream_feature_view: "ledger", typed_features: { account_id: { int64_val: "1" }, n: { double_val: 1.5 } }, to: "online" });
    expect(frac.error?.code).toBe(3);
    expect(frac.error?.details).toContain("got number 1.5");
  });
});
