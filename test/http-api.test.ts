import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode, encode } from "@msgpack/msgpack";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const DRIVER_FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "is_active", "city", "vehicle_type", "rating", "hours_online_7d", "recent_trip_ids", "rating_history"].map(
  (f) => `driver_hourly_stats:${f}`,
);

let q: Quiver;
let dir: string;
let registryPath: string;
const clock = { now: NOW };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "quiver-http-"));
  registryPath = join(dir, "registry.yaml");
  copyFileSync("src/registry/example-registry.yaml", registryPath);
  q = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "200", "--max-rows", "500", "--max-body-bytes", "65536"], {}), {
    clock: () => clock.now,
  });
});
afterAll(async () => {
  await q.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (path: string, body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) =>
  q.http.app.request(path, { method: "POST", body: typeof body === "string" ? body : body instanceof Uint8Array ? new Blob([body as Uint8Array<ArrayBuffer>]) : JSON.stringify(body), headers });

async function errorOf(res: Response): Promise<{ status: number; code: string; path?: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; path?: string; message: string } };
  return { status: res.status, ...body.error };
}

describe("POST /v1/lookup", () => {
  test("answers values, statuses and event times per row for the demo data", async () => {
    const res = await post("/v1/lookup", { features: DRIVER_FEATURES, entities: [{ driver_id: 1001 }, { driver_id: 1 }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { featureNames: string[]; rows: { values: unknown[]; statuses: string[]; eventTimestamps: number[] }[] };
    expect(body.featureNames).toEqual(DRIVER_FEATURES.map((f) => f.slice(f.indexOf(":") + 1)));
    expect(body.rows[0]!.statuses).toEqual(new Array(10).fill("PRESENT"));
    expect(body.rows[0]!.values[4]).toBe("Porto");
    expect(body.rows[0]!.eventTimestamps[0]).toBe(NOW - 1000);
    expect(body.rows[1]!.statuses).toEqual(new Array(10).fill("NOT_FOUND"));
    expect(body.rows[1]!.values.slice(0, 3)).toEqual([0, 0.5, 12]);
  });

  test("feature services, columnar entities, full feature names, defaults off", async () => {
    const res = await post("/v1/lookup", { featureService: "driver_ranking", entities: { driver_id: [1002, 99] }, fullFeatureNames: true, fillDefaults: false });
    const body = (await res.json()) as { featureNames: string[]; rows: { values: unknown[] }[] };
    expect(body.featureNames[0]).toBe("driver_hourly_stats__conv_rate");
    expect(body.rows[1]!.values).toEqual([null, null, null, null, null]);
  });

  test("MessagePack in and out round-trips the same answer as JSON", async () => {
    const query = { features: DRIVER_FEATURES, entities: [{ driver_id: 1003 }] };
    const viaJson = await (await post("/v1/lookup", query)).json();
    const res = await post("/v1/lookup", encode(query), { "content-type": "application/msgpack", accept: "application/msgpack" });
    expect(res.headers.get("content-type")).toBe("application/msgpack");
    expect(decode(new Uint8Array(await res.arrayBuffer()))).toEqual(viaJson);
    const jsonOut = await post("/v1/lookup", encode(query), { "content-type": "application/msgpack" });
    expect(await jsonOut.json()).toEqual(viaJson);
    // Accept weights: q=0 is a refusal, and a JSON range weighted higher wins.
    const typeFor = async (accept: string) => (await post("/v1/lookup", query, { "content-type": "application/json", accept })).headers.get("content-type");
    expect(await typeFor("application/msgpack;q=0")).toStartWith("application/json");
    expect(await typeFor("application/msgpack;q=0.5, application/json")).toStartWith("application/json");
    expect(await typeFor("application/json;q=0.4, application/x-msgpack;q=0.9")).toBe("application/msgpack");
    expect(await typeFor("text/html, application/msgpack")).toBe("application/msgpack");
    // Media types are case-insensitive.
    expect(await typeFor("Application/MsgPack")).toBe("application/msgpack");
    expect(await typeFor("APPLICATION/X-MSGPACK")).toBe("application/msgpack");
  });

  test("a body holding more objects and arrays than its row limit allows is a 400 before they are built", async () => {
    // 500 rows (--max-rows) allow 500 × 32 + 4096 containers; 30,000 empty maps are one byte each in MessagePack.
    const empties = { features: ["driver_hourly_stats:conv_rate"], entities: [Array.from({ length: 30_000 }, () => ({}))] };
    const res = await post("/v1/lookup", encode(empties), { "content-type": "application/msgpack" });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "too_complex", path: "(body)" });
    const push = await post("/v1/push", encode({ featureView: "fraud_signals", rows: empties.entities[0] }), { "content-type": "application/msgpack" });
    expect(await errorOf(push)).toMatchObject({ status: 400, code: "too_complex" });
    // Within the budget the request is judged as before.
    const fewer = await post("/v1/lookup", encode({ ...empties, entities: [{ driver_id: 1001 }] }), { "content-type": "application/msgpack" });
    expect(fewer.status).toBe(200);
  });

  test("malformed JSON and MessagePack are 400s", async () => {
    expect(await errorOf(await post("/v1/lookup", "{bad"))).toMatchObject({ status: 400, code: "invalid_json", path: "(body)" });
    const bad = await post("/v1/lookup", new Uint8Array([0xc1]), { "content-type": "application/msgpack" });
    expect(await errorOf(bad)).toMatchObject({ status: 400, code: "invalid_msgpack" });
    expect(await errorOf(await post("/v1/lookup", "[1,2]"))).toMatchObject({ status: 400, code: "invalid_request", path: "(body)" });
  });

  test("unknown view, feature or service is a 400 naming it", async () => {
    expect(await errorOf(await post("/v1/lookup", { features: ["ghost:x"], entities: [] }))).toMatchObject({
      status: 400,
      code: "unknown_feature_view",
      path: "features[0]",
      message: 'features[0]: unknown feature view "ghost"',
    });
    expect(await errorOf(await post("/v1/lookup", { features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:speed"], entities: [] }))).toMatchObject({
      code: "unknown_feature",
      path: "features[1]",
      message: 'features[1]: feature view "driver_hourly_stats" has no feature "speed"',
    });
    expect(await errorOf(await post("/v1/lookup", { featureService: "nope", entities: [] }))).toMatchObject({ code: "unknown_feature_service", path: "featureService" });
    expect(await errorOf(await post("/v1/lookup", { entities: [] }))).toMatchObject({ code: "invalid_request", path: "features" });
    expect(await errorOf(await post("/v1/lookup", { features: ["driver_hourly_stats:conv_rate"], entities: [], fillDefault: true }))).toMatchObject({ path: "fillDefault" });
  });

  test("a wrong entity-key type is a 400 naming the field and row", async () => {
    const res = await post("/v1/lookup", { features: DRIVER_FEATURES, entities: [{ driver_id: 1001 }, { driver_id: "abc" }] });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "invalid_entity", path: "entities[1].driver_id" });
    const cols = await post("/v1/lookup", { features: ["customer_profile:segment"], entities: { customer_id: ["c1", 7] } });
    expect(await errorOf(cols)).toMatchObject({ path: "entities.customer_id[1]", message: "entities.customer_id[1]: expected string, got integer 7" });
  });

  test("more rows than the limit is a 400, a body over the limit a 413, a wrong content type a 415", async () => {
    const many = { features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: Array.from({ length: 501 }, (_, i) => i) } };
    expect(await errorOf(await post("/v1/lookup", many))).toMatchObject({ status: 400, code: "too_many_rows", path: "entities" });
    const huge = JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1 }], pad: "x".repeat(70_000) });
    expect(await errorOf(await post("/v1/lookup", huge))).toMatchObject({ status: 413, code: "payload_too_large" });
    expect(await errorOf(await post("/v1/lookup", "a=b", { "content-type": "application/x-www-form-urlencoded" }))).toMatchObject({ status: 415, code: "unsupported_media_type" });
    // The media type itself, not a prefix of it; parameters are fine.
    const query = JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] });
    for (const type of ["application/jsonx", "application/json-seq", "application/msgpack+json"]) {
      expect(await errorOf(await post("/v1/lookup", query, { "content-type": type }))).toMatchObject({ status: 415, path: "(headers).content-type" });
    }
    expect((await post("/v1/lookup", query, { "content-type": "Application/JSON ; charset=utf-8" })).status).toBe(200);
  });

  test("an empty entity list answers an empty result", async () => {
    const res = await post("/v1/lookup", { features: ["driver_hourly_stats:conv_rate"], entities: [] });
    expect(await res.json()).toEqual({ featureNames: ["conv_rate"], rows: [] });
  });
});

describe("bodies over 64 KiB", () => {
  let big: Quiver;
  beforeAll(async () => {
    big = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "200", "--max-rows", "500", "--max-body-bytes", "1048576"], {}), { clock: () => clock.now });
  });
  afterAll(async () => {
    await big.close();
  });
  const send = (path: string, body: string, length: boolean) =>
    big.http.app.request(path, { method: "POST", body, headers: { "content-type": "application/json", ...(length ? { "content-length": String(Buffer.byteLength(body)) } : {}) } });

  test("JSON with more objects and arrays than the row limit allows is a 400, with or without a length", async () => {
    // 40,000 empty objects in 120 KB: JSON.parse would build them all before the row limit is checked.
    const empties = `{"features":["driver_hourly_stats:conv_rate"],"entities":[[${"{},".repeat(39_999)}{}]]}`;
    for (const route of ["/v1/lookup", "/get-online-features", "/v1/push", "/push"]) {
      for (const length of [true, false]) {
        const res = await send(route, empties, length);
        const error = ((await res.json()) as { error: unknown }).error;
        // Feast's routes answer Feast's error shape: the message only.
        const message = typeof error === "string" ? error : (error as { message: string }).message;
        expect({ route, length, status: res.status, message }).toEqual({ route, length, status: 400, message: expect.stringContaining("more than 20096 objects and arrays") });
      }
    }
    // Brackets inside strings are not containers: a 200 KB string of them is fine.
    const quoted = JSON.stringify({ features: ["driver_hourly_stats:city"], entities: [{ driver_id: 1001 }], note: `"[{\\${"[{".repeat(100_000)}` });
    const res = await send("/v1/lookup", quoted, true);
    expect(await errorOf(res)).toMatchObject({ status: 400, path: "note" });
  });

  test("a lookup over 64 KiB reads bytes that are not UTF-8 leniently, as a smaller one does", async () => {
    // 500 rows of 140-byte keys (keys are at most 1,024 units), the last holding a 0xff byte.
    const rows = Array.from({ length: 499 }, (_, i) => `{"customer_id":"${String(i).padStart(140, "k")}"}`).join(",");
    const head = Buffer.from(`{"features":["customer_profile:segment"],"entities":[${rows},{"customer_id":"x`);
    const body = Buffer.concat([head, Buffer.from([0xff]), Buffer.from('"}]}')]);
    expect(body.length).toBeGreaterThan(64 << 10);
    const res = await big.http.app.request("/v1/lookup", { method: "POST", body, headers: { "content-type": "application/json", "content-length": String(body.length) } });
    const answer = await res.text();
    expect({ status: res.status, answer: answer.slice(0, 300) }).toMatchObject({ status: 200 });
    expect((JSON.parse(answer) as { rows: { statuses: string[] }[] }).rows[499]!.statuses).toEqual(["NOT_FOUND"]);
  });

  test("a large legitimate push (500 rows with lists) is accepted", async () => {
    const rows = Array.from({ length: 500 }, (_, i) => ({ customer_id: `big-${i}`, event_timestamp: NOW, spend_1h: i, device_ids: Array.from({ length: 20 }, (_, j) => `device-${i}-${j}`) }));
    const body = JSON.stringify({ featureView: "fraud_signals", rows });
    expect(body.length).toBeGreaterThan(64 << 10);
    const res = await send("/v1/push", body, true);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ written: 500 });
  });
});

describe("POST /v1/push", () => {
  test("writes rows, reports ignored older events, and lookups see the new values", async () => {
    const push = (rows: unknown[]) => post("/v1/push", { featureView: "fraud_signals", rows });
    const first = await push([{ customer_id: "new-1", event_timestamp: NOW, spend_1h: 12.5, device_ids: ["d1"] }]);
    expect(await first.json()).toEqual({ written: 1, ignored: 0 });
    const older = await push([{ customer_id: "new-1", event_timestamp: NOW - 5, spend_1h: 1 }]);
    expect(await older.json()).toEqual({ written: 0, ignored: 1 });
    const res = await post("/v1/lookup", { features: ["fraud_signals:spend_1h", "fraud_signals:device_ids"], entities: [{ customer_id: "new-1" }] });
    expect(((await res.json()) as { rows: { values: unknown[] }[] }).rows[0]!.values).toEqual([12.5, ["d1"]]);
  });

  test("a bad value anywhere rejects the whole push and writes nothing", async () => {
    const rows = [
      { customer_id: "batch-1", spend_1h: 1 },
      { customer_id: "batch-2", spend_1h: 2, txn_count_1h: 1.5 },
    ];
    const res = await post("/v1/push", { featureView: "fraud_signals", rows });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "invalid_value", path: "rows[1].txn_count_1h" });
    const check = await post("/v1/lookup", { features: ["fraud_signals:spend_1h"], entities: [{ customer_id: "batch-1" }], fillDefaults: false });
    expect(((await check.json()) as { rows: { statuses: string[] }[] }).rows[0]!.statuses).toEqual(["NOT_FOUND"]);
  });

  test("a key given twice in one JSON object is a 400 naming it and writes nothing: which one counts depends on the parser", async () => {
    const statusOf = async (id: string) => {
      const res = await post("/v1/lookup", { features: ["fraud_signals:spend_1h"], entities: [{ customer_id: id }], fillDefaults: false });
      return ((await res.json()) as { rows: { statuses: string[] }[] }).rows[0]!.statuses[0];
    };
    const v1 = await post("/v1/push", '{"featureView":"fraud_signals","rows":[{"customer_id":"dup-0","spend_1h":1},{"customer_id":"dup-1","customer_id":"dup-2","spend_1h":2}]}');
    expect(await errorOf(v1)).toMatchObject({ status: 400, code: "duplicate_key", path: "rows[1].customer_id" });
    const feast = await post("/push", '{"push_source_name":"fraud_signals","df":{"customer_id":["dup-3"],"customer_id":["dup-4"],"spend_1h":[3]}}');
    expect(feast.status).toBe(400);
    expect(((await feast.json()) as { error: string }).error).toStartWith("df.customer_id:");
    for (const id of ["dup-0", "dup-1", "dup-2", "dup-3", "dup-4"]) expect(await statusOf(id)).toBe("NOT_FOUND");
  });

  test("text that would not read back as written is refused and writes nothing: bytes that are not UTF-8, lone surrogates", async () => {
    const statusOf = async (id: string) => {
      const res = await post("/v1/lookup", { features: ["fraud_signals:device_ids"], entities: [{ customer_id: id }], fillDefaults: false });
      return ((await res.json()) as { rows: { statuses: string[] }[] }).rows[0]!.statuses[0];
    };
    const text = JSON.stringify({ featureView: "fraud_signals", rows: [{ customer_id: "utf8-1", device_ids: ["dXY"] }] });
    const bytes = new TextEncoder().encode(text);
    const at = text.indexOf("dXY") + 1;
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    // With a Content-Length, as every client sends it (the route must not take the lenient native parse).
    const res = await q.http.app.request("/v1/push", { method: "POST", body: bytes, headers: { "content-type": "application/json", "content-length": String(bytes.byteLength) } });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "invalid_body", path: "(body)", message: "body is not valid UTF-8" });
    // A compressed write is refused for what it is, not as bad UTF-8.
    const gzipped = Bun.gzipSync(new TextEncoder().encode(text));
    const zipped = await q.http.app.request("/v1/push", { method: "POST", body: gzipped, headers: { "content-type": "application/json", "content-encoding": "gzip", "content-length": String(gzipped.byteLength) } });
    expect(await errorOf(zipped)).toMatchObject({ status: 415, path: "(headers).content-encoding" });
    expect(await statusOf("utf8-1")).toBe("NOT_FOUND");
    const lone = await errorOf(await post("/v1/push", `{"featureView":"fraud_signals","rows":[{"customer_id":"utf8-2","device_ids":["ok","a\\ud800"]}]}`));
    expect(lone).toMatchObject({ status: 400, code: "invalid_value", path: "rows[0].device_ids" });
    expect(lone.message).toContain("lone surrogate");
    expect(await statusOf("utf8-2")).toBe("NOT_FOUND");
  });

  test("a string join key with a lone surrogate is refused on push and lookup: it would be the same stored key as U+FFFD, one entity overwriting another", async () => {
    const seg = async (raw: string) => {
      const res = await post("/v1/lookup", `{"features":["customer_profile:segment"],"entities":[{"customer_id":${raw}}],"fillDefaults":false}`);
      return { status: res.status, body: (await res.json()) as { rows?: { values: unknown[] }[]; error?: { path: string; message: string } } };
    };
    expect((await post("/v1/push", `{"featureView":"customer_profile","rows":[{"customer_id":"victim\ufffd","segment":"vip"}]}`)).status).toBe(200);
    for (const lone of ["\\udfff", "\\ud800", "x\\udc00y"]) {
      const res = await post("/v1/push", `{"featureView":"customer_profile","rows":[{"customer_id":"victim${lone}","segment":"attacker"}]}`);
      const e = await errorOf(res);
      expect(e).toMatchObject({ status: 400, code: "invalid_entity", path: "rows[0].customer_id" });
      expect(e.message).toContain("lone surrogate");
      const read = await seg(`"victim${lone}"`);
      expect(read.status).toBe(400);
      expect(read.body.error!.path).toBe("entities[0].customer_id");
    }
    // The genuine U+FFFD key kept its row; a well-formed pair (an emoji) is a key like any other.
    expect((await seg('"victim\\ufffd"')).body.rows![0]!.values).toEqual(["vip"]);
    expect((await post("/v1/push", `{"featureView":"customer_profile","rows":[{"customer_id":"e\\ud83d\\ude00","segment":"smile"}]}`)).status).toBe(200);
    expect((await seg('"e\\ud83d\\ude00"')).body.rows![0]!.values).toEqual(["smile"]);
  });

  test("an int64 of 60,000 digits is a 400 quoting 40 of them, as a number or as text", async () => {
    // Read exactly (a BigInt of every digit), it held the serving thread for seconds at 4 MiB and was quoted whole.
    const digits = "7".repeat(60_000);
    for (const value of [digits, `"${digits}"`]) {
      const res = await post("/v1/push", `{"featureView":"driver_hourly_stats","rows":[{"driver_id":1001,"avg_daily_trips":${value}}]}`);
      const text = await res.text();
      expect(res.status).toBe(400);
      expect(text.length).toBeLessThan(1000);
      expect(text).toContain("avg_daily_trips");
    }
  });

  test("unknown view, unknown column, missing rows are 400s naming them", async () => {
    expect(await errorOf(await post("/v1/push", { featureView: "ghost", rows: [{}] }))).toMatchObject({ code: "unknown_feature_view", path: "featureView" });
    expect(await errorOf(await post("/v1/push", { featureView: "fraud_signals", rows: [{ customer_id: "a" }, { customer_id: "b", spend1h: 1 }] }))).toMatchObject({
      code: "unknown_feature",
      path: "rows[1].spend1h",
    });
    expect(await errorOf(await post("/v1/push", { featureView: "fraud_signals", rows: [] }))).toMatchObject({ path: "rows" });
    expect(await errorOf(await post("/v1/push", { featureView: "fraud_signals" }))).toMatchObject({ path: "rows" });
  });
});

describe("Feast-compatible routes", () => {
  test("an echoed entity column nested thousands deep is a 400 naming it, not a 500; a lookup past the value limit is a 400 naming entities", async () => {
    const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
    const res = await post("/get-online-features", `{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[${deep}]}}`);
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).toContain("entities.driver_id[0]");
    expect(text).toContain("scalar or a list of scalars");
    const rows = Array.from({ length: 500 }, (_, i) => ({ driver_id: 1001 + i }));
    const features = Array.from({ length: 1001 }, () => "driver_hourly_stats:conv_rate");
    const big = await errorOf(await post("/v1/lookup", { features, entities: rows }));
    expect(big).toMatchObject({ status: 400, code: "too_many_values", path: "entities" });
  });

  test("/get-online-features answers column-wise with join keys first and RFC 3339 times", async () => {
    const res = await post("/get-online-features", {
      features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
      entities: { driver_id: [1001, 7] },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { metadata: { feature_names: string[] }; results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[] };
    expect(body.metadata.feature_names).toEqual(["driver_id", "conv_rate", "acc_rate"]);
    expect(body.results).toHaveLength(3);
    expect(body.results[0]).toEqual({ values: [1001, 7], statuses: ["PRESENT", "PRESENT"], event_timestamps: ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"] });
    expect(body.results[1]!.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
    expect(body.results[1]!.values[1]).toBeNull();
    expect(body.results[1]!.event_timestamps).toEqual(["2026-11-22T11:59:59Z", "1970-01-01T00:00:00Z"]);
  });

  test("full_feature_names and feature_service", async () => {
    const res = await post("/get-online-features", { feature_service: "driver_ranking", entities: { driver_id: [1001] }, full_feature_names: true });
    const body = (await res.json()) as { metadata: { feature_names: string[] } };
    expect(body.metadata.feature_names.slice(0, 2)).toEqual(["driver_id", "driver_hourly_stats__conv_rate"]);
  });

  test("Feast's request defaults (features [] beside a service, feature_service \"\" beside features) mean not given, as Feast's server reads them", async () => {
    // Feast's pydantic model defaults `features` to [] and reads `if request.feature_service:`, so clients that
    // send every field (an empty list beside a service, an empty service beside a list) are answered there.
    const byService = await post("/get-online-features", { feature_service: "driver_ranking", features: [], entities: { driver_id: [1001] } });
    expect(byService.status).toBe(200);
    const plain = await post("/get-online-features", { feature_service: "driver_ranking", entities: { driver_id: [1001] } });
    expect(await byService.text()).toBe(await plain.text());
    for (const service of ["", null]) {
      const byList = await post("/get-online-features", { feature_service: service, features: ["driver_hourly_stats:city"], entities: { driver_id: [1001] } });
      expect(byList.status).toBe(200);
      expect(((await byList.json()) as { metadata: { feature_names: string[] } }).metadata.feature_names).toEqual(["driver_id", "city"]);
    }
    // Both given for real is still refused, and so is naming nothing (Feast's server fails on an empty list too).
    expect((await post("/get-online-features", { feature_service: "driver_ranking", features: ["driver_hourly_stats:city"], entities: { driver_id: [1001] } })).status).toBe(400);
    expect((await post("/get-online-features", { feature_service: "", features: [], entities: { driver_id: [1001] } })).status).toBe(400);
    // Quiver's own route keeps its strict reading.
    expect((await post("/v1/lookup", { featureService: "driver_ranking", features: [], entities: { driver_id: [1001] } })).status).toBe(400);
  });

  test("errors use Feast's shape", async () => {
    const res = await post("/get-online-features", { features: ["ghost:x"], entities: { driver_id: [1] } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'features[0]: unknown feature view "ghost"', status_code: 400 });
  });

  test("/push and /write-to-online-store take a columnar df", async () => {
    const pushed = await post("/push", {
      push_source_name: "fraud_signals_push_source",
      df: { customer_id: ["feast-1", "feast-2"], spend_1h: [1.5, 2.5], event_timestamp: ["2026-11-22T11:00:00Z", "2026-11-22T11:00:00Z"] },
      to: "online",
    });
    expect(await pushed.json()).toEqual({ written: 2, ignored: 0 });
    const written = await post("/write-to-online-store", { feature_view_name: "fraud_signals", df: { customer_id: ["feast-3"], spend_1h: [3.5] } });
    expect(await written.json()).toEqual({ written: 1, ignored: 0 });
    const res = await post("/get-online-features", { features: ["fraud_signals:spend_1h"], entities: { customer_id: ["feast-1", "feast-2", "feast-3"] } });
    expect(((await res.json()) as { results: { values: unknown[] }[] }).results[1]!.values).toEqual([1.5, 2.5, 3.5]);
    const offline = await post("/push", { push_source_name: "fraud_signals", df: { customer_id: ["x"] }, to: "offline" });
    expect(offline.status).toBe(400);
  });

  test("a created timestamp is accepted when it is a time (not stored) and a 400 naming it when it is not; nothing is written", async () => {
    const ok = await post("/push", { push_source_name: "fraud_signals_push_source", df: { customer_id: ["created-1"], spend_1h: [1], created: ["2026-11-22T11:00:00Z"] } });
    expect(await ok.json()).toEqual({ written: 1, ignored: 0 });
    const bad = await post("/push", { push_source_name: "fraud_signals_push_source", df: { customer_id: ["created-2", "created-3"], spend_1h: [1, 2], created_timestamp: [NOW, "junk"] } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toStartWith("df.created_timestamp[1]:");
    const res = await post("/get-online-features", { features: ["fraud_signals:spend_1h"], entities: { customer_id: ["created-2"] } });
    expect(((await res.json()) as { results: { statuses: string[] }[] }).results[1]!.statuses).toEqual(["NOT_FOUND"]);
  });

  test("/health is 200 while serving", async () => {
    expect((await q.http.app.request("/health")).status).toBe(200);
  });

  test("bodies are read as JSON whatever their Content-Type, as Feast's server reads them (its documented curl -d sends a form type)", async () => {
    const query = { features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] } };
    for (const type of ["application/x-www-form-urlencoded", "text/plain", "application/msgpack"]) {
      const res = await post("/get-online-features", JSON.stringify(query), { "content-type": type });
      expect([type, res.status]).toEqual([type, 200]);
      expect(((await res.json()) as { results: { statuses: string[] }[] }).results[1]!.statuses).toEqual(["PRESENT"]);
    }
    const pushed = await post("/push", JSON.stringify({ push_source_name: "fraud_signals_push_source", df: { customer_id: ["form-1"], spend_1h: [4.5] } }), { "content-type": "application/x-www-form-urlencoded" });
    expect(await pushed.json()).toEqual({ written: 1, ignored: 0 });
    // Not JSON, whatever the type: Feast's 400 shape, not a 415.
    const form = await post("/get-online-features", "a=b", { "content-type": "application/x-www-form-urlencoded" });
    expect(form.status).toBe(400);
    expect(await form.json()).toMatchObject({ status_code: 400, error: expect.stringContaining("not valid JSON") });
  });

  test("a wrong method on a Feast route is a 405 in Feast's shape, with Allow", async () => {
    for (const [method, path] of [["GET", "/get-online-features"], ["PUT", "/push"], ["POST", "/health"]] as const) {
      const res = await q.http.app.request(path, { method });
      expect([path, res.status, res.headers.get("allow")]).toEqual([path, 405, path === "/health" ? "GET" : "POST"]);
      expect(await res.json()).toEqual({ error: `${method} ${path}: use ${path === "/health" ? "GET" : "POST"}`, status_code: 405 });
    }
  });
});

describe("ops routes", () => {
  test("/healthz, /readyz with every node, /metrics in Prometheus text", async () => {
    expect((await q.http.app.request("/healthz")).status).toBe(200);
    const ready = await q.http.app.request("/readyz");
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { ready: boolean; store: { detail: { nodes: unknown[] } } };
    expect(body.ready).toBe(true);
    expect(body.store.detail.nodes).toHaveLength(4);
    const metrics = await (await q.http.app.request("/metrics")).text();
    expect(metrics).toContain('quiver_http_requests_total{route="/v1/lookup",status="200"}');
    expect(metrics).toContain('quiver_http_request_duration_seconds_bucket{route="/v1/lookup",le="+Inf"}');
    expect(metrics).toMatch(/quiver_store_operations_total\{op="get",outcome="ok"\} \d+/);
    expect(metrics).toContain("quiver_ring_share{node=");
    expect(metrics).toMatch(/quiver_embedded_keys\{node="embedded-0"\} \d+/);
  });

  test("/metrics over a socket: rendered after the request's callback, its ~60 KB leave as one stream, the same text", async () => {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", routes: q.http.nativeRoutes, fetch: q.http.app.fetch });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      const text = await res.text();
      expect(text.length).toBeGreaterThan(16 * 1024);
      expect(res.headers.get("transfer-encoding")).toBe("chunked");
      expect(text).toContain("# TYPE quiver_http_requests_total counter");
      // Whole: ends with a newline and every line is a sample or a comment (a family may have no series yet).
      expect(text.endsWith("\n")).toBe(true);
      const broken = text
        .slice(0, -1)
        .split("\n")
        .filter((line) => line !== "" && !/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line) && !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$/.test(line));
      expect(broken).toEqual([]);
      // Every family, as rendered in process: none lost from the end of the stream.
      const families = (t: string) => t.split("\n").filter((l) => l.startsWith("# TYPE "));
      expect(families(text)).toEqual(families(await q.metrics.render()));
    } finally {
      server.stop(true);
    }
  });

  test("unknown routes are JSON 404s, wrong methods JSON 405s", async () => {
    expect(await errorOf(await q.http.app.request("/nope"))).toMatchObject({ status: 404, code: "not_found" });
    const res = await q.http.app.request("/v1/lookup");
    expect(res.headers.get("allow")).toBe("POST");
    expect(await errorOf(res)).toMatchObject({ status: 405, code: "method_not_allowed" });
  });

  test("with an admin token set, admin routes refuse requests without it", async () => {
    const guarded = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "0", "--admin-token", "s3cret"], {}));
    try {
      const denied = await guarded.http.app.request("/admin/registry/reload", { method: "POST" });
      expect(await errorOf(denied)).toMatchObject({ status: 401, code: "unauthorized" });
      const allowed = await guarded.http.app.request("/admin/registry/reload", { method: "POST", headers: { authorization: "Bearer s3cret" } });
      expect(allowed.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  test("with an admin token set, every write route needs it (as gRPC writes do); refused writes write nothing, lookups need no token", async () => {
    const guarded = await buildQuiver(loadConfig(["--registry", registryPath, "--demo-entities", "0", "--admin-token", "s3cret"], {}));
    const send = (path: string, body: unknown, authorization?: string) =>
      guarded.http.app.request(path, { method: "POST", headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) }, body: typeof body === "string" ? body : JSON.stringify(body) });
    const spend = async (customer: string) => {
      const res = await send("/v1/lookup", { features: ["fraud_signals:spend_1h"], entities: [{ customer_id: customer }] });
      expect(res.status).toBe(200);
      return ((await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]!;
    };
    const writes = [
      ["/v1/push", (c: string) => ({ featureView: "fraud_signals", rows: [{ customer_id: c, spend_1h: 4.5 }] })],
      ["/push", (c: string) => ({ push_source_name: "fraud_signals_push_source", df: { customer_id: [c], spend_1h: [4.5] } })],
      ["/write-to-online-store", (c: string) => ({ feature_view_name: "fraud_signals", df: { customer_id: [c], spend_1h: [4.5] } })],
    ] as const;
    try {
      for (const [path, body] of writes) {
        const customer = `auth${path.replaceAll("/", "-")}`;
        for (const authorization of [undefined, "Bearer nope", "s3cret", "Bearer s3cret2"]) {
          const denied = await send(path, body(customer), authorization);
          expect(denied.status).toBe(401);
          expect(denied.headers.get("www-authenticate")).toBe('Bearer realm="quiver"');
          // Quiver's error shape on /v1 names the header as its path; Feast's shape has only a message, which names it too.
          const error = (await denied.json()) as Record<string, unknown>;
          if (path === "/v1/push") expect(error.error).toMatchObject({ code: "unauthorized", path: "(headers).authorization" });
          else expect(error).toEqual({ error: "writes need Authorization: Bearer <QUIVER_ADMIN_TOKEN>", status_code: 401 });
        }
        // Refused before its body is read: an unauthenticated client learns nothing about validation or size.
        expect((await send(path, "{not json", "Bearer nope")).status).toBe(401);
        expect((await send(path, { rows: "x".repeat(2 << 20) })).status).toBe(401);
        expect((await spend(customer)).statuses[0]).toBe("NOT_FOUND");
        const ok = await send(path, body(customer), "Bearer s3cret");
        expect(ok.status).toBe(200);
        expect(await spend(customer)).toMatchObject({ values: [4.5], statuses: ["PRESENT"] });
      }
    } finally {
      await guarded.close();
    }
  });

  test("topology admin routes explain that the embedded store has no shards", async () => {
    const res = await q.http.app.request("/admin/topology/reload", { method: "POST" });
    expect(await errorOf(res)).toMatchObject({ status: 409, code: "no_topology" });
  });

  test("registry reload swaps a valid file and keeps the old one on errors, listing them all", async () => {
    const before = q.registry.current.digest;
    writeFileSync(registryPath, "entities: []\nfeatureViews:\n  - name: v\n    entities: [ghost]\n    features: [{ name: a, type: float }]\n");
    const bad = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(bad.status).toBe(400);
    const err = (await bad.json()) as { error: { code: string; issues: { path: string }[] } };
    expect(err.error.code).toBe("invalid_registry");
    expect(err.error.issues.map((i) => i.path)).toEqual(["featureViews[0].entities[0]", "featureViews[0].features[0].type"]);
    expect(q.registry.current.digest).toBe(before);

    // An index embedder this server cannot make: refused before anything changes (it was a 500 with the registry swapped).
    const example = await Bun.file("src/registry/example-registry.yaml").text();
    expect(example).toContain("embedder: hashed-ngrams");
    writeFileSync(registryPath, example.replace("maxAge: 1h", "maxAge: 3h").replace("embedder: hashed-ngrams", "embedder: onnx"));
    const onnx = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(onnx.status).toBe(400);
    const onnxErr = (await onnx.json()) as { error: { code: string; path: string; message: string } };
    expect(onnxErr.error.code).toBe("invalid_registry");
    expect(onnxErr.error.path).toMatch(/^featureViews\[\d+\]\.index\.embedder$/);
    expect(onnxErr.error.message).toContain("--embedder-model");
    expect(q.registry.current.digest).toBe(before);

    const text = example.replace("maxAge: 1h", "maxAge: 2h");
    writeFileSync(registryPath, text);
    const ok = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(ok.status).toBe(200);
    // The reply counts what the file declares, push sources included.
    const reply = (await ok.json()) as { reloaded: boolean; featureViews: number; featureServices: number; pushSources: number };
    expect(reply).toMatchObject({ reloaded: true, featureViews: q.registry.current.views.size, featureServices: q.registry.current.services.size });
    expect(reply.pushSources).toBe(q.registry.current.pushSources.size);
    expect(reply.pushSources).toBeGreaterThan(0);
    expect(q.registry.current.digest).not.toBe(before);
    expect(q.registry.current.views.get("fraud_signals")!.maxAgeMs).toBe(7_200_000);
  });

  test("registry reloads run one at a time: a second one while the first runs is a 409, and the registry is the file's", async () => {
    writeFileSync(registryPath, await Bun.file("src/registry/example-registry.yaml").text());
    // Both sent at once: the first reads the file in a worker, so the second arrives while it runs.
    const [a, b] = await Promise.all([0, 1].map(() => q.http.app.request("/admin/registry/reload", { method: "POST" })));
    expect([a!.status, b!.status].sort()).toEqual([200, 409]);
    const refused = a!.status === 409 ? a! : b!;
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("reload_in_progress");
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
  });

  test("a reload that would misread stored rows (features reordered or retyped under one version) is refused; appending or a new version is not", async () => {
    const example = await Bun.file("src/registry/example-registry.yaml").text();
    const conv = "      - { name: conv_rate, type: float64, description: Share of offers the driver accepted and completed. }\n";
    const acc = "      - { name: acc_rate, type: float64, default: 0.5 }\n";
    expect(example).toContain(conv + acc);
    writeFileSync(registryPath, example);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    const lookup = async () => {
      const res = await q.http.app.request("/v1/lookup", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:city"], entities: [{ driver_id: 1001 }] }),
      });
      return ((await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]!;
    };
    const stored = await lookup();
    expect(stored.statuses).toEqual(["PRESENT", "PRESENT", "PRESENT"]);
    const before = q.registry.current.digest;

    // Swapped (stored rows would answer each other's values) and retyped (a stored string answered as an int64).
    writeFileSync(registryPath, example.replace(conv + acc, acc + conv).replace("{ name: city, type: string, default: unknown }", "{ name: city, type: int64 }"));
    const refused = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(refused.status).toBe(400);
    const err = ((await refused.json()) as { error: { code: string; message: string; path: string } }).error;
    expect(err.code).toBe("incompatible_registry");
    expect(err.path).toBe("featureViews[0].features");
    expect(err.message).toContain("featureViews[0].features: the store (this process's memory) keeps rows of driver_hourly_stats@1 laid out as [conv_rate:float64, acc_rate:float64,");
    expect(err.message).toContain('this feature list has "acc_rate" (float64) where "conv_rate" (float64) is stored, feature 0');
    expect(err.message).toContain("bump the view's version");
    expect(q.registry.current.digest).toBe(before);
    expect(await lookup()).toEqual(stored);

    // Appended at the end: stored rows read the new feature as null (its default filled).
    writeFileSync(registryPath, example.replace(acc, `${acc}      - { name: zz_added, type: int64, default: 7 }\n`).replace('      - { name: rating_history, type: "float64[]" }\n', '      - { name: rating_history, type: "float64[]" }\n      - { name: zz_last, type: string }\n'));
    const midway = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(((await midway.json()) as { error: { message: string } }).error.message).toContain('has "zz_added" (int64) where "avg_daily_trips" (int64) is stored, feature 2');
    const last = '      - { name: rating_history, type: "float64[]" }\n';
    writeFileSync(registryPath, example.replace(last, `${last}      - { name: zz_last, type: string, default: none }\n`));
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    const res = await q.http.app.request("/v1/lookup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:zz_last"], entities: [{ driver_id: 1001 }] }),
    });
    expect(((await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]).toMatchObject({ values: [stored.values[0], "none"], statuses: ["PRESENT", "NULL_VALUE"] });

    // Rolled back (the shorter list) is fine; another feature where zz_last is recorded is not.
    writeFileSync(registryPath, example);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    writeFileSync(registryPath, example.replace(last, `${last}      - { name: zz_other, type: string }\n`));
    const other = await q.http.app.request("/admin/registry/reload", { method: "POST" });
    expect(((await other.json()) as { error: { message: string } }).error.message).toContain('has "zz_other" (string) where "zz_last" (string) is stored, feature 10');

    // The same reorder with a new version is a new, empty layout.
    writeFileSync(registryPath, example.replace(conv + acc, acc + conv).replace(/(name: driver_hourly_stats[\s\S]*?version: )1/, "$12"));
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    expect(q.registry.current.views.get("driver_hourly_stats")!.version).toBe(2);
    expect((await lookup()).statuses).toEqual(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]);
    writeFileSync(registryPath, example);
    expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
  });
});
