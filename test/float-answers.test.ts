import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode, encode } from "@msgpack/msgpack";
import { Redis } from "ioredis";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { unaryCall } from "./support/grpc-client.ts";
import { type GrpcFixture, startGrpcFixture } from "./support/grpc-fixture.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

// Real servers on a shared machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * A float-typed feature (float64, float64[], embedding) answers as a float in
 * every format, whatever number it holds: MessagePack float 64 (0xcb) for a
 * whole 2.0 and for -0.0 (the library writes both as integers, and stored rows
 * hold a whole float as one), JSON `2.0` / `-0.0` on /v1/lookup and Feast's
 * route, gRPC double_val. int64 features stay integers. Through the HTTP app
 * in-process (the route's real handler) and the gRPC edge on a socket, on the
 * embedded store and on rows an older Quiver stored in Redis.
 */

const DRIVER = "driver_hourly_stats";
const ALL = ["conv_rate", "acc_rate", "avg_daily_trips", "is_active", "city", "vehicle_type", "rating", "hours_online_7d", "recent_trip_ids", "rating_history"];
const ref = (names: string[]) => names.map((n) => `${DRIVER}:${n}`);

/** A MessagePack scalar with its type byte, or a container of them: what a typed client's decoder sees. */
type Typed = { t: number; v: unknown } | Typed[] | { [key: string]: Typed };

/** Reads a MessagePack document keeping each number's type byte (the answer's own bytes, not a decoder's view of them). */
function typed(bytes: Uint8Array): Typed {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const str = (n: number) => {
    const s = new TextDecoder().decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const read = (): Typed => {
    const t = bytes[p++]!;
    if (t <= 0x7f) return { t, v: t };
    if (t >= 0xe0) return { t, v: t - 0x100 };
    if (t >= 0xa0 && t <= 0xbf) return { t, v: str(t & 0x1f) };
    if (t >= 0x90 && t <= 0x9f) return Array.from({ length: t & 0x0f }, read);
    if (t >= 0x80 && t <= 0x8f) {
      const out: Record<string, Typed> = {};
      for (let i = 0; i < (t & 0x0f); i++) {
        const k = read() as { v: string };
        out[k.v] = read();
      }
      return out;
    }
    const at = p;
    switch (t) {
      case 0xc0:
        return { t, v: null };
      case 0xc2:
      case 0xc3:
        return { t, v: t === 0xc3 };
      case 0xcb:
        p += 8;
        return { t, v: view.getFloat64(at) };
      case 0xcc:
        p += 1;
        return { t, v: view.getUint8(at) };
      case 0xcd:
        p += 2;
        return { t, v: view.getUint16(at) };
      case 0xce:
        p += 4;
        return { t, v: view.getUint32(at) };
      case 0xcf:
        p += 8;
        return { t, v: Number(view.getBigUint64(at)) };
      case 0xd0:
        p += 1;
        return { t, v: view.getInt8(at) };
      case 0xd1:
        p += 2;
        return { t, v: view.getInt16(at) };
      case 0xd2:
        p += 4;
        return { t, v: view.getInt32(at) };
      case 0xd3:
        p += 8;
        return { t, v: Number(view.getBigInt64(at)) };
      case 0xd9:
        p += 1;
        return { t, v: str(view.getUint8(at)) };
      case 0xdc: {
        p += 2;
        return Array.from({ length: view.getUint16(at) }, read);
      }
      default:
        throw new Error(`type byte 0x${t.toString(16)} at ${at} not read by this test`);
    }
  };
  const out = read();
  expect(p).toBe(bytes.length);
  return out;
}

/** The type bytes of a row's values: a number for a scalar, a list of them for a list. */
function typeCodes(values: Typed): unknown {
  return (values as Typed[]).map((x) => (Array.isArray(x) ? x.map((e) => (e as { t: number }).t) : (x as { t: number }).t));
}

async function post(app: Quiver["http"]["app"], path: string, body: string, accept = "application/json") {
  const res = await app.request(path, { method: "POST", body, headers: { "content-type": "application/json", accept, "x-quiver-timeout-ms": "10000" } });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const F64 = 0xcb;

describe("on the embedded store (HTTP app and gRPC edge)", () => {
  let f: GrpcFixture;
  beforeAll(async () => {
    f = await startGrpcFixture();
    // Written as a client types them: whole floats with their point, -0.0, an int64 -0 (which is 0).
    const row =
      '{"driver_id":1190,"conv_rate":2.0,"acc_rate":-0.0,"avg_daily_trips":-0,"is_active":true,"city":"Porto","vehicle_type":"suv",' +
      '"rating":5.0,"hours_online_7d":0.25,"recent_trip_ids":[1,2],"rating_history":[1.0,0.5,3.0]}';
    const pushed = await post(f.quiver.http.app, "/v1/push", `{"featureView":"${DRIVER}","rows":[${row}]}`);
    expect(pushed.status).toBe(200);
    const emb = await post(f.quiver.http.app, "/v1/push", '{"featureView":"customer_profile","rows":[{"customer_id":"whole","embedding":[1.0,0,-2,0.5,3,4,5,-0.0]}]}');
    expect(emb.status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await f?.close();
  });

  // Every answer path: the stored row copied whole (all features in stored order), value by value (a subset, another
  // order), and decoded values (two views: LookupService.lookup).
  const shapes = [
    { name: "whole stored row", features: ref(ALL), at: ALL },
    { name: "stored values in another order", features: ref(["rating_history", "conv_rate", "avg_daily_trips", "acc_rate", "rating"]), at: ["rating_history", "conv_rate", "avg_daily_trips", "acc_rate", "rating"] },
    { name: "decoded values (two views)", features: [...ref(ALL), "driver_customer_affinity:trips_together"], at: ALL },
  ];

  test.each(shapes)("MessagePack /v1/lookup, $name: float features are float 64 (0xcb), -0.0 keeps its sign, int64 stays an integer", async ({ features, at }) => {
    const body = JSON.stringify({ features, entities: [{ driver_id: 1190, customer_id: "c0" }, { driver_id: 1, customer_id: "c0" }] });
    const out = await post(f.quiver.http.app, "/v1/lookup", body, "application/msgpack");
    expect(out.status).toBe(200);
    const answer = typed(out.bytes) as { rows: { values: Typed }[] };
    const found = typeCodes(answer.rows[0]!.values) as unknown[];
    const missing = typeCodes(answer.rows[1]!.values) as unknown[];
    const expected: Record<string, unknown> = { conv_rate: F64, acc_rate: F64, avg_daily_trips: 0x00, rating: F64, hours_online_7d: F64, recent_trip_ids: [1, 2], rating_history: [F64, F64, F64] };
    // Defaults of a driver with no row: conv_rate's derived 0, acc_rate 0.5, rating 4.5 are floats; avg_daily_trips' median 12 an integer.
    const defaults: Record<string, unknown> = { conv_rate: F64, acc_rate: F64, avg_daily_trips: 12, rating: F64, hours_online_7d: F64, recent_trip_ids: [], rating_history: [] };
    at.forEach((name, c) => {
      if (name in expected) expect({ name, code: found[c] }).toEqual({ name, code: expected[name] });
      if (name in defaults) expect({ name, code: missing[c] }).toEqual({ name, code: defaults[name] });
    });
    // The library's decoder reads the same numbers (and -0 as -0).
    const decoded = decode(out.bytes) as { rows: { values: unknown[] }[] };
    const values = decoded.rows[0]!.values;
    expect(values[at.indexOf("conv_rate")]).toBe(2);
    expect(Object.is(values[at.indexOf("acc_rate")], -0)).toBe(true);
    expect(Object.is(values[at.indexOf("avg_daily_trips")], 0)).toBe(true);
    expect(values[at.indexOf("rating_history")]).toEqual([1, 0.5, 3]);
  });

  test.each(shapes)("JSON /v1/lookup, $name: whole floats as 2.0, -0.0 as -0.0, int64 as integers", async ({ features, at }) => {
    const body = JSON.stringify({ features, entities: [{ driver_id: 1190, customer_id: "c0" }, { driver_id: 1, customer_id: "c0" }] });
    const out = await post(f.quiver.http.app, "/v1/lookup", body);
    expect(out.status).toBe(200);
    const spelled = (row: number) => {
      const values = text(out.bytes).split('"values":[')[row + 1]!;
      return values.slice(0, values.indexOf('],"statuses"'));
    };
    const found: Record<string, string> = { conv_rate: "2.0", acc_rate: "-0.0", avg_daily_trips: "0", is_active: "true", city: '"Porto"', vehicle_type: '"suv"', rating: "5.0", hours_online_7d: "0.25", recent_trip_ids: "[1,2]", rating_history: "[1.0,0.5,3.0]" };
    const defaults: Record<string, string> = { conv_rate: "0.0", acc_rate: "0.5", avg_daily_trips: "12", is_active: "false", city: '"unknown"', vehicle_type: '"sedan"', rating: "4.5", hours_online_7d: "0.0", recent_trip_ids: "[]", rating_history: "[]" };
    const row = (m: Record<string, string>) => at.map((n) => m[n]).join(",");
    expect(spelled(0).startsWith(row(found))).toBe(true);
    expect(spelled(1).startsWith(row(defaults))).toBe(true);
    // JSON.parse reads them as the numbers they are.
    const parsed = JSON.parse(text(out.bytes)) as { rows: { values: unknown[] }[] };
    expect(Object.is(parsed.rows[0]!.values[at.indexOf("acc_rate")], -0)).toBe(true);
  });

  test("Feast /get-online-features: whole floats as 2.0 and -0.0, one view (stored bytes) and two (decoded values)", async () => {
    for (const extra of [[], ["driver_customer_affinity:trips_together"]]) {
      const body = JSON.stringify({ features: [...ref(["conv_rate", "acc_rate", "avg_daily_trips", "rating_history"]), ...extra], entities: { driver_id: [1190], customer_id: ["c0"] } });
      const out = await post(f.quiver.http.app, "/get-online-features", body);
      expect(out.status).toBe(200);
      const columns = [...text(out.bytes).matchAll(/"values":(\[[^\]]*\]?\])/g)].map((m) => m[1]);
      expect(columns.slice(2, 6)).toEqual(["[2.0]", "[-0.0]", "[0]", "[[1.0,0.5,3.0]]"]);
    }
  });

  test("an embedding's whole and -0.0 elements are floats in MessagePack and JSON", async () => {
    const body = JSON.stringify({ features: ["customer_profile:embedding"], entities: [{ customer_id: "whole" }] });
    const mp = await post(f.quiver.http.app, "/v1/lookup", body, "application/msgpack");
    const answer = typed(mp.bytes) as { rows: { values: Typed }[] };
    expect(typeCodes(answer.rows[0]!.values)).toEqual([new Array(8).fill(F64)]);
    const emb = (decode(mp.bytes) as { rows: { values: number[][] }[] }).rows[0]!.values[0]!;
    expect(Object.is(emb[7], -0)).toBe(true);
    const json = await post(f.quiver.http.app, "/v1/lookup", body);
    expect(text(json.bytes)).toContain('"values":[[1.0,0.0,-2.0,0.5,3.0,4.0,5.0,-0.0]]');
  });

  test("/v1/match writes a joined embedding's whole and -0.0 elements as floats, int64 features as integers", async () => {
    const embedding = [1, -0, ...new Array<number>(380).fill(0), 0.5, 2];
    const body = `{"featureView":"claims","rows":[{"claim_id":990001,"text":"float","cluster":-0,"embedding":[${embedding.map((x) => (Object.is(x, -0) ? "-0.0" : String(x))).join(",")}]}]}`;
    expect((await post(f.quiver.http.app, "/v1/push", body)).status).toBe(200);
    await f.quiver.vectors.idle();
    const out = await post(f.quiver.http.app, "/v1/match", JSON.stringify({ view: "claims", vector: embedding, k: 1, features: ["claims:cluster", "claims:embedding"] }));
    expect(out.status).toBe(200);
    const spelled = text(out.bytes);
    expect(spelled).toContain('"entity":{"claim_id":990001}');
    expect(spelled).toContain(`"values":[0,[1.0,-0.0,${new Array(380).fill("0.0").join(",")},0.5,2.0]]`);
  });

  test("gRPC answers double_val / double_values for float features (2.0, -0.0) and int64 for int features", async () => {
    type V = Record<string, unknown> & { val?: string };
    const feast = await unaryCall<{ results: { values: V[] }[] }>(f.clients.feast, "GetOnlineFeatures", {
      features: { val: ref(["conv_rate", "acc_rate", "avg_daily_trips", "rating_history"]) },
      entities: { driver_id: { val: [{ int64_val: "1190" }] } },
    });
    expect(feast.error).toBeUndefined();
    const [conv, acc, trips, hist] = feast.response!.results.slice(1).map((r) => r.values[0]!);
    expect(conv).toMatchObject({ val: "double_val", double_val: 2 });
    expect(acc!.val).toBe("double_val");
    expect(Object.is(acc!.double_val, -0)).toBe(true);
    expect(trips).toMatchObject({ val: "int64_val", int64_val: "0" });
    expect(hist).toMatchObject({ val: "double_list_val", double_list_val: { val: [1, 0.5, 3] } });
    const quiver = await unaryCall<{ columns: { type: string; double_values: number[]; int64_values: string[] }[] }>(f.clients.quiver, "Lookup", {
      features: ref(["conv_rate", "acc_rate", "avg_daily_trips"]),
      entities: [{ name: "driver_id", int64_values: ["1190"] }],
    });
    expect(quiver.error).toBeUndefined();
    const [c, a, t] = quiver.response!.columns;
    expect(c).toMatchObject({ type: "FLOAT64", double_values: [2] });
    expect(Object.is(a!.double_values[0], -0)).toBe(true);
    expect(t).toMatchObject({ type: "INT64", int64_values: ["0"] });
  });
});

describe("rows an older Quiver stored in Redis (whole floats and -0.0 as MessagePack integers)", () => {
  let redis: RedisProcess;
  let quiver: Quiver;
  let dir: string;
  beforeAll(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), "quiver-float-answers-"));
    copyFileSync("src/registry/example-registry.yaml", join(dir, "registry.yaml"));
    writeFileSync(join(dir, "topology.yaml"), `shards:\n  - name: only\n    primary: ${redis.address}\n`);
    // The row as the library alone encodes it (what every version before this one stored): 2.0 → 0x02, -0.0 → 0x00.
    const values = [2, -0, 7, true, "Porto", "suv", 5, 0.25, [1, 2], [1, 0.5, 3]];
    const header = Buffer.alloc(8);
    header.writeDoubleBE(Date.now() - 1000);
    const raw = new Redis({ host: "127.0.0.1", port: redis.port });
    try {
      await raw.set(`${DRIVER}@1/driver_id=i1190`, Buffer.concat([header, Buffer.from(encode(values))]));
    } finally {
      raw.disconnect();
    }
    quiver = await buildQuiver(loadConfig(["--registry", join(dir, "registry.yaml"), "--topology", join(dir, "topology.yaml"), "--demo-entities", "0", "--grpc-port", "-1"], {}));
  }, 120_000);
  afterAll(async () => {
    await quiver?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("are answered with float 64 for every float feature in MessagePack, and as 2.0 in JSON", async () => {
    for (const features of [ref(ALL), ref(["rating_history", "conv_rate"])]) {
      const body = JSON.stringify({ features, entities: [{ driver_id: 1190 }] });
      const mp = await post(quiver.http.app, "/v1/lookup", body, "application/msgpack");
      expect(mp.status).toBe(200);
      const codes = typeCodes((typed(mp.bytes) as { rows: { values: Typed }[] }).rows[0]!.values);
      const byName: Record<string, unknown> = { conv_rate: F64, acc_rate: F64, avg_daily_trips: 7, is_active: 0xc3, rating: F64, hours_online_7d: F64, recent_trip_ids: [1, 2], rating_history: [F64, F64, F64] };
      expect(codes).toEqual(features.map((r) => byName[r.split(":")[1]!] ?? expect.any(Number)));
      const json = await post(quiver.http.app, "/v1/lookup", body);
      expect(text(json.bytes)).toContain(features.length === 2 ? '"values":[[1.0,0.5,3.0],2.0]' : '"values":[2.0,0.0,7,true,"Porto","suv",5.0,0.25,[1,2],[1.0,0.5,3.0]]');
    }
  });
});
