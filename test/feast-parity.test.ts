import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { formatRfc3339 } from "../src/serving/index.ts";
import { unaryCall } from "./support/grpc-client.ts";
import { type GrpcFixture, NOW, startGrpcFixture } from "./support/grpc-fixture.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * One shared fixture of Feast requests, sent to the HTTP route
 * POST /get-online-features and to gRPC feast.serving.ServingService/GetOnlineFeatures:
 * both must answer the same names, values, statuses and event times (and the
 * same error message for a bad request).
 */
const REQUESTS: Record<string, unknown>[] = [
  { features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city", "driver_hourly_stats:is_active"], entities: { driver_id: [1001, 1002, 42] } },
  { features: ["driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:recent_trip_ids", "driver_hourly_stats:rating_history"], entities: { driver_id: [1003, 5] }, full_feature_names: true },
  { feature_service: "fraud_detection", entities: { customer_id: ["c1", "c2", "nobody"] } },
  { features: ["customer_profile:favorite_categories", "customer_profile:embedding", "customer_profile:is_premium"], entities: { customer_id: ["c7", "zz"] } },
  { features: ["driver_customer_affinity:trips_together", "driver_customer_affinity:blocked"], entities: { driver_id: [1001, 1002], customer_id: ["c0", "c0"] } },
  { feature_service: "driver_ranking", entities: { driver_id: [] } },
  { features: ["customer_profile:embedding", "claims:embedding"], entities: { customer_id: ["c1"], claim_id: [1] }, full_feature_names: true },
];

const BAD: Record<string, unknown>[] = [
  { features: ["ghost:x"], entities: { driver_id: [1] } },
  { features: ["driver_hourly_stats:nope"], entities: { driver_id: [1] } },
  { feature_service: "nope", entities: { driver_id: [1] } },
  { features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: ["x"] } },
  { features: ["driver_hourly_stats:conv_rate"], entities: { customer_id: ["c1"] } },
  // Two columns named alike (Feast's FeatureNameCollisionError): the same ref twice; one bare name from two views.
  { features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city", "driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] }, full_feature_names: true },
  { features: ["customer_profile:embedding", "claims:embedding"], entities: { customer_id: ["c1"], claim_id: [1] } },
];

let f: GrpcFixture;
beforeAll(async () => {
  f = await startGrpcFixture();
}, 120_000);
afterAll(async () => {
  await f.close();
});

function toGrpc(req: Record<string, unknown>): Record<string, unknown> {
  const entities: Record<string, { val: unknown[] }> = {};
  for (const [k, values] of Object.entries(req.entities as Record<string, unknown[]>)) {
    entities[k] = { val: values.map((v) => (typeof v === "number" ? { int64_val: String(v) } : { string_val: v })) };
  }
  const out: Record<string, unknown> = { entities, full_feature_names: req.full_feature_names === true };
  if (req.features) out.features = { val: req.features };
  if (req.feature_service) out.feature_service = req.feature_service;
  return out;
}

type Value = Record<string, unknown> & { val?: string };
function plain(v: Value): unknown {
  // No field set: no value (Feast's servers send a missing value so).
  if (v.val === undefined) return null;
  const x = v[v.val];
  switch (v.val) {
    case "int64_val":
      return Number(x);
    case "int64_list_val":
      return (x as { val: string[] }).val.map(Number);
    case "double_list_val":
    case "string_list_val":
    case "bool_list_val":
      return (x as { val: unknown[] }).val;
    case "null_val":
      return null;
    default:
      return x;
  }
}

function fromGrpc(res: { metadata: { feature_names: { val: string[] } }; results: { values: Value[]; statuses: string[]; event_timestamps: { seconds: string; nanos: number }[] }[] }) {
  return {
    metadata: { feature_names: res.metadata.feature_names.val },
    results: res.results.map((r) => ({
      values: r.values.map(plain),
      statuses: r.statuses,
      event_timestamps: r.event_timestamps.map((t) => formatRfc3339(Number(t.seconds) * 1000 + t.nanos / 1e6)),
    })),
  };
}

test("HTTP /get-online-features and gRPC GetOnlineFeatures answer the same for every fixture request", async () => {
  for (const req of REQUESTS) {
    const http = await f.quiver.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    expect(http.status).toBe(200);
    const httpBody = await http.json();
    const grpcOut = await unaryCall<Parameters<typeof fromGrpc>[0]>(f.clients.feast, "GetOnlineFeatures", toGrpc(req));
    expect(grpcOut.error).toBeUndefined();
    expect(fromGrpc(grpcOut.response!)).toEqual(httpBody as ReturnType<typeof fromGrpc>);
  }
});

test("bad requests get the same message over both (HTTP 400 body, gRPC details)", async () => {
  for (const req of BAD) {
    const http = await f.quiver.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    const body = (await http.json()) as { error: string };
    const grpcOut = await unaryCall(f.clients.feast, "GetOnlineFeatures", toGrpc(req));
    expect(grpcOut.error?.details).toBe(body.error);
  }
});

test("Feast's HTTP server reads an explicit null as absent and flags as pydantic does; column names that collide are named in the error", async () => {
  const send = async (req: Record<string, unknown>) => {
    const res = await f.quiver.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    return { status: res.status, body: (await res.json()) as { metadata?: { feature_names: string[] }; error?: string } };
  };
  const both = await send({ features: ["driver_hourly_stats:conv_rate"], feature_service: null, entities: { driver_id: [1001] } });
  expect(both).toMatchObject({ status: 200, body: { metadata: { feature_names: ["driver_id", "conv_rate"] } } });
  expect((await send({ features: null, feature_service: "driver_ranking", entities: { driver_id: [1001] } })).status).toBe(200);
  for (const [flag, full] of [["true", true], ["False", false], [1, true], [null, false]] as const) {
    const out = await send({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] }, full_feature_names: flag });
    expect({ flag, names: out.body.metadata?.feature_names }).toEqual({ flag, names: ["driver_id", full ? "driver_hourly_stats__conv_rate" : "conv_rate"] });
  }
  const bad = await send({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] }, full_feature_names: "maybe" });
  expect(bad).toMatchObject({ status: 400, body: { error: 'full_feature_names: expected true or false, got string "maybe"' } });
  const twice = await send({ features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] }, full_feature_names: true });
  expect(twice).toMatchObject({ status: 400, body: { error: 'features[1]: "driver_hourly_stats:conv_rate" is asked for twice; each feature may be named once' } });
  const collide = await send({ features: ["customer_profile:embedding", "claims:embedding"], entities: { customer_id: ["c1"], claim_id: [1] } });
  expect(collide.status).toBe(400);
  expect(collide.body.error).toBe(
    'features[1]: "claims:embedding" and "customer_profile:embedding" would both answer a column "embedding": set full_feature_names to true to name columns "<view>__<feature>"',
  );
});

test("an int64 join key sent as decimal text is echoed as a number, as Feast's server types each entity column by its join key", async () => {
  // Feast's HTTP server converts every entity column to its key's type before echoing it (python_values_to_proto_values:
  // int(x) for an int64 key), so `"1001"` comes back as 1001, `"-0"` as 0 and past 2^53 as the exact integer literal.
  const send = async (req: Record<string, unknown>) => {
    const res = await f.quiver.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    return { status: res.status, text: await res.text() };
  };
  const entities = { driver_id: ["1001", 1002, "9223372036854775807", "-0"] };
  // One view (the answer written from stored bytes) and two (written from decoded values) echo the keys alike.
  const one = await send({ features: ["driver_hourly_stats:conv_rate"], entities });
  expect(one.status).toBe(200);
  expect(one.text).toStartWith('{"metadata":{"feature_names":["driver_id","conv_rate"]},"results":[{"values":[1001,1002,9223372036854775807,0],"statuses":');
  const two = await send({ features: ["driver_hourly_stats:conv_rate", "driver_customer_affinity:blocked"], entities: { ...entities, customer_id: ["c0", "c1", "c2", "c3"] } });
  expect(two.status).toBe(200);
  expect(two.text).toStartWith('{"metadata":{"feature_names":["driver_id","customer_id","conv_rate","blocked"]},"results":[{"values":[1001,1002,9223372036854775807,0],"statuses":');
  // The values read are those of the numeric keys.
  const numeric = await send({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001, 1002, "9223372036854775807", 0] } });
  expect(one.text).toBe(numeric.text);
  // gRPC echoes the request's Values as they came (as Feast's Go server does): a string_val stays one.
  const grpcOut = await unaryCall<{ results: { values: Value[] }[] }>(f.clients.feast, "GetOnlineFeatures", {
    features: { val: ["driver_hourly_stats:conv_rate"] },
    entities: { driver_id: { val: [{ string_val: "1001" }] } },
  });
  expect(grpcOut.response?.results[0]?.values.map(plain)).toEqual(["1001"]);
});

test("a string join key sent as an integer is the key its digits spell, echoed as text, as Feast's server reads it (str(x))", async () => {
  const post = async (path: string, req: Record<string, unknown>) => {
    const res = await f.quiver.http.app.request(path, { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    return { status: res.status, text: await res.text() };
  };
  // A customer whose id is all digits, as ids loaded from a numeric source often are.
  expect((await post("/v1/push", { featureView: "customer_profile", rows: [{ customer_id: "7", segment: "vip" }] })).status).toBe(200);
  const asText = await post("/get-online-features", { features: ["customer_profile:segment"], entities: { customer_id: ["7", "c2"] } });
  expect(asText.status).toBe(200);
  expect(asText.text).toContain('"values":["vip","new"]');
  const asNumber = await post("/get-online-features", { features: ["customer_profile:segment"], entities: { customer_id: [7, "c2"] } });
  expect(asNumber).toEqual(asText);
  // Two views (the decoded path) alike; a composite key's string part too.
  const pair = await post("/get-online-features", { features: ["driver_customer_affinity:blocked", "customer_profile:segment"], entities: { driver_id: [1001], customer_id: [7] } });
  expect(pair.status).toBe(200);
  expect(pair.text).toStartWith('{"metadata":{"feature_names":["driver_id","customer_id","blocked","segment"]},"results":[{"values":[1001],"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]},{"values":["7"],');
  expect(pair.text).toContain('{"values":["vip"],"statuses":["PRESENT"]');
  // Only integers: Python's str() of a float or a bool is no id a client means ("1.5", "True").
  for (const bad of [1.5, true]) {
    const out = await post("/get-online-features", { features: ["customer_profile:segment"], entities: { customer_id: [bad] } });
    expect({ bad, status: out.status }).toEqual({ bad, status: 400 });
  }
  // gRPC keeps a Value's kind: an int64_val for a string key is refused naming it (Feast's Go server would look up another key).
  const grpcOut = await unaryCall(f.clients.feast, "GetOnlineFeatures", { features: { val: ["customer_profile:segment"] }, entities: { customer_id: { val: [{ int64_val: "7" }] } } });
  expect(grpcOut.error?.details).toBe("entities.customer_id[0]: expected string, got integer 7");
});

test("a string join key sent as a whole number written as a float (1.0, 1e2, -0.0) is refused, not read as the digits of another key", async () => {
  // Feast reads a string key's column with str(x): 1.0 is the key "1.0" there (Python's float repr), never "1". JSON.parse
  // gives 1 for both `1` and `1.0`, so such a literal read the customer "1": another entity's features, answered PRESENT.
  const post = async (path: string, body: string) => {
    const res = await f.quiver.http.app.request(path, { method: "POST", body, headers: { "content-type": "application/json" } });
    return { status: res.status, text: await res.text() };
  };
  expect((await post("/v1/push", JSON.stringify({ featureView: "customer_profile", rows: [{ customer_id: "1", segment: "one" }, { customer_id: "100", segment: "hundred" }, { customer_id: "0", segment: "zero" }] }))).status).toBe(200);
  const lookup = (literal: string, features = '["customer_profile:segment"]') => post("/get-online-features", `{"features":${features},"entities":{"customer_id":["c1",${literal}]}}`);
  // An integer literal is still the key its digits spell (1 is "1").
  expect((await lookup("1")).text).toContain('"values":["c1","1"]');
  for (const literal of ["1.0", "1.00", "1e0", "1E0", "0.1e1", "1e2", "-0.0", "0.0"]) {
    for (const features of ['["customer_profile:segment"]', '["customer_profile:segment","driver_customer_affinity:blocked"]']) {
      const out = await post("/get-online-features", `{"features":${features},"entities":{"customer_id":["c1",${literal}]${features.includes("affinity") ? ',"driver_id":[1001,1002]' : ""}}}`);
      expect({ literal, status: out.status, text: out.text }).toEqual({
        literal,
        status: 400,
        text: expect.stringContaining("entities.customer_id[1]: expected string (or an integer, read as its digits), got a number written as a float"),
      });
    }
  }
  // An int64 key takes such a literal as the integer it is, as Feast's int(1001.0) does.
  const driver = await post("/get-online-features", '{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1001.0,1.002e3]}}');
  expect(driver.status).toBe(200);
  expect(driver.text).toStartWith('{"metadata":{"feature_names":["driver_id","conv_rate"]},"results":[{"values":[1001,1002],');
});

test("float64 values that are whole numbers are written as JSON floats (5.0), as Feast's server writes a double_val, so its clients read a float", async () => {
  // Feast's Python server prints double_val with Python's float repr ("5.0"); its SDK's remote store reads the answer
  // back with type inference (python_values_to_proto_values, ValueType.UNKNOWN), so `5` came back to it as an int64_val.
  const post = async (path: string, req: Record<string, unknown>) => {
    const res = await f.quiver.http.app.request(path, { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
    return { status: res.status, text: await res.text() };
  };
  const row = { driver_id: 1199, conv_rate: 1, acc_rate: 0, rating: -3, avg_daily_trips: 12, hours_online_7d: 0.25, rating_history: [4, 4.5, 5] };
  expect((await post("/v1/push", { featureView: "driver_hourly_stats", rows: [row] })).status).toBe(200);
  const features = ["conv_rate", "acc_rate", "rating", "avg_daily_trips", "hours_online_7d", "rating_history"].map((n) => `driver_hourly_stats:${n}`);
  const expected = ["[1.0]", "[0.0]", "[-3.0]", "[12]", "[0.25]", "[[4.0,4.5,5.0]]"];
  // One view (the answer written from stored bytes) and two (from decoded values).
  for (const extra of [[], ["driver_customer_affinity:avg_rating_given"]]) {
    const out = await post("/get-online-features", { features: [...features, ...extra], entities: { driver_id: [1199], customer_id: ["c0"] } });
    expect(out.status).toBe(200);
    const values = [...out.text.matchAll(/"values":(\[[^\]]*\]?\])/g)].map((m) => m[1]);
    expect(values.slice(2, 8)).toEqual(expected);
  }
  // An embedding is a list of doubles too.
  expect((await post("/v1/push", { featureView: "customer_profile", rows: [{ customer_id: "whole", embedding: [1, 0, -2, 0.5, 3, 4, 5, 6] }] })).status).toBe(200);
  const emb = await post("/get-online-features", { features: ["customer_profile:embedding"], entities: { customer_id: ["whole"] } });
  expect(emb.text).toContain('"values":[[1.0,0.0,-2.0,0.5,3.0,4.0,5.0,6.0]]');
});

test("a row older than its view's maxAge is still answered, flagged OUTSIDE_MAX_AGE with its own event time, over HTTP and gRPC alike", async () => {
  // driver_hourly_stats keeps 1 d; driver 1001's demo row is stamped a second before NOW. Two views take the decoding path.
  const day = 86_400_000;
  try {
    for (const [at, status] of [[NOW - 1000 + day, "PRESENT"], [NOW + day, "OUTSIDE_MAX_AGE"]] as const) {
      f.clock.now = at;
      for (const features of [["driver_hourly_stats:conv_rate"], ["driver_hourly_stats:conv_rate", "driver_customer_affinity:trips_together"]]) {
        const req = { features, entities: { driver_id: [1001], customer_id: ["c0"] } };
        const http = await f.quiver.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify(req) });
        const body = (await http.json()) as { results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[] };
        expect({ at, features, conv: body.results[2] }).toEqual({ at, features, conv: { values: [0.0588], statuses: [status], event_timestamps: ["2026-11-22T11:59:59Z"] } });
        // The affinity view keeps 30 d: its value is PRESENT either way.
        if (features.length > 1) expect(body.results[3]!.statuses).toEqual(["PRESENT"]);
        const grpcOut = await unaryCall<Parameters<typeof fromGrpc>[0]>(f.clients.feast, "GetOnlineFeatures", toGrpc(req));
        expect(fromGrpc(grpcOut.response!)).toEqual(body as ReturnType<typeof fromGrpc>);
      }
    }
  } finally {
    f.clock.now = NOW;
  }
});

test("gRPC: a missing or null value is a Value with no field set, as Feast's servers send it (null_val was read as 0 by Feast's own reader)", async () => {
  // Feast's Python server answers ValueProto() and its Go server types.Value{} where there is no value; Feast's
  // feast_value_type_to_python_type returns None for a Value with no field set, but getattr(v, "null_val") — the
  // enum NULL, 0 — for one holding null_val: a missing conv_rate read as 0.0 by a Python client using Feast's helpers.
  const push = await f.quiver.http.app.request("/v1/push", { method: "POST", body: JSON.stringify({ featureView: "driver_hourly_stats", rows: [{ driver_id: 1198, conv_rate: 0.5 }] }) });
  expect(push.status).toBe(200);
  // One view (written from stored bytes) and two (decoded); driver 42 has no row, 1198 a row whose city is null.
  for (const features of [["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"], ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city", "customer_profile:segment"]]) {
    const out = await unaryCall<{ results: { values: Value[]; statuses: string[] }[] }>(f.clients.feast, "GetOnlineFeatures", {
      features: { val: features },
      entities: { driver_id: { val: [{ int64_val: "1198" }, { int64_val: "42" }] }, customer_id: { val: [{ string_val: "nobody" }, { string_val: "c1" }] } },
    });
    expect(out.error).toBeUndefined();
    const [, , conv, city] = out.response!.results;
    expect({ features, conv: conv!.statuses, city: city!.statuses }).toEqual({ features, conv: ["PRESENT", "NOT_FOUND"], city: ["NULL_VALUE", "NOT_FOUND"] });
    // Which field of the oneof is set (protobuf's WhichOneof): none where there is no value.
    expect({ features, conv: conv!.values.map((v) => v.val ?? null), city: city!.values.map((v) => v.val ?? null) }).toEqual({ features, conv: ["double_val", null], city: [null, null] });
  }
});
