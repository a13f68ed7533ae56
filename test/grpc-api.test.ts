import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { ServerHttp2Stream } from "node:http2";
import { type GrpcFixture, NOW, startGrpcFixture } from "./support/grpc-fixture.ts";
import { grpc, unaryCall } from "./support/grpc-client.ts";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

let f: GrpcFixture;
beforeAll(async () => {
  f = await startGrpcFixture(["--admin-token", "s3cret"]);
}, 120_000);
afterAll(async () => {
  await f.close();
});

const AUTH = { authorization: "Bearer s3cret" };

/** A series' value in the server's /metrics text (0 when absent). */
async function metricValue(series: string): Promise<number> {
  const line = (await f.quiver.metrics.render()).split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}
const int64s = (...ids: number[]) => ids.map(String);

interface Column {
  type: string;
  int64_values: string[];
  double_values: number[];
  string_values: string[];
  bool_values: boolean[];
  int64_list_values: { val: string[] }[];
  double_list_values: { val: number[] }[];
  string_list_values: { val: string[] }[];
  statuses: string[];
  event_timestamps_ms: string[];
  stale: boolean[];
}
interface LookupResponse {
  id: string;
  feature_names: string[];
  row_count: number;
  columns: Column[];
  degraded: string[];
}
interface FeastResponse {
  metadata: { feature_names: { val: string[] } };
  results: { values: Record<string, unknown>[]; statuses: string[]; event_timestamps: { seconds: string; nanos: number }[] }[];
  status: boolean;
}

describe("quiver.v1.FeatureService/Lookup", () => {
  test("every registry type arrives in its packed column with statuses and ms event times", async () => {
    const features = ["conv_rate", "avg_daily_trips", "is_active", "city", "recent_trip_ids", "rating_history"].map((x) => `driver_hourly_stats:${x}`);
    const { response, error } = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", {
      features: [...features, "customer_profile:favorite_categories"],
      entities: [
        { name: "driver_id", int64_values: int64s(1001, 7) },
        { name: "customer_id", string_values: ["c1", "nobody"] },
      ],
      id: "42",
    });
    expect(error).toBeUndefined();
    const r = response!;
    expect(r.id).toBe("42");
    expect(r.row_count).toBe(2);
    expect(r.feature_names).toEqual(["conv_rate", "avg_daily_trips", "is_active", "city", "recent_trip_ids", "rating_history", "favorite_categories"]);
    const [conv, trips, active, city, tripIds, ratings, cats] = r.columns as [Column, Column, Column, Column, Column, Column, Column];
    expect(conv.type).toBe("FLOAT64");
    expect(conv.double_values[0]).toBeGreaterThan(0);
    expect(conv.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
    expect(conv.event_timestamps_ms).toEqual([String(NOW - 1000), "0"]);
    expect(trips.type).toBe("INT64");
    expect(trips.int64_values).toHaveLength(2);
    expect(trips.int64_values[1]).toBe("12"); // default: median from the registry statistics
    expect(active.type).toBe("BOOL");
    expect(active.bool_values).toHaveLength(2);
    expect(city).toMatchObject({ type: "STRING", string_values: ["Porto", "unknown"] });
    expect(tripIds.type).toBe("INT64_LIST");
    expect(tripIds.int64_list_values[0]!.val.length).toBeGreaterThan(0);
    expect(tripIds.int64_list_values[1]!.val).toEqual([]);
    expect(ratings.type).toBe("FLOAT64_LIST");
    expect(ratings.double_list_values[0]!.val.length).toBeGreaterThan(0);
    expect(cats.type).toBe("STRING_LIST");
    expect(cats.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
    expect(cats.string_list_values[0]!.val.length).toBeGreaterThan(0);
  });

  test("embeddings, feature services, full names, defaults off and composite keys", async () => {
    const emb = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", { features: ["customer_profile:embedding"], entities: [{ name: "customer_id", string_values: ["c3"] }] });
    expect(emb.response!.columns[0]!.type).toBe("EMBEDDING");
    expect(emb.response!.columns[0]!.double_list_values[0]!.val).toHaveLength(8);
    const svc = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", {
      feature_service: "driver_ranking",
      entities: [{ name: "driver_id", int64_values: int64s(1002, 5) }],
      full_feature_names: true,
      fill_defaults: false,
    });
    expect(svc.response!.feature_names[0]).toBe("driver_hourly_stats__conv_rate");
    expect(svc.response!.columns[1]!.double_values[1]).toBe(0); // acc_rate default 0.5 not filled
    const pair = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", {
      features: ["driver_customer_affinity:trips_together"],
      entities: [
        { name: "customer_id", string_values: ["c0", "c0"] },
        { name: "driver_id", int64_values: int64s(1001, 1002) },
      ],
    });
    expect(pair.response!.columns[0]!.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
  });

  test("NULL_VALUE and OUTSIDE_MAX_AGE statuses", async () => {
    const pushed = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [{ values: { customer_id: { string_val: "null-1" }, spend_1h: { double_val: 3 } }, event_timestamp_ms: String(NOW - 2 * 3_600_000) }] }, { metadata: AUTH });
    expect(pushed.error).toBeUndefined();
    const r = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", { features: ["fraud_signals:spend_1h", "fraud_signals:spend_30d"], entities: [{ name: "customer_id", string_values: ["null-1"] }] });
    // fraud_signals' max age is 1 h and the row is 2 h old; spend_30d was not pushed (null).
    expect(r.response!.columns[0]!.statuses).toEqual(["OUTSIDE_MAX_AGE"]);
    expect(r.response!.columns[0]!.double_values).toEqual([3]);
    expect(r.response!.columns[1]!.statuses).toEqual(["NULL_VALUE"]);
  });

  test("invalid requests are INVALID_ARGUMENT and unknown names NOT_FOUND, each naming the field", async () => {
    const cases: [unknown, grpc.status, string][] = [
      [{ entities: [{ name: "driver_id", int64_values: ["1"] }] }, grpc.status.INVALID_ARGUMENT, "features"],
      [{ features: ["driver_hourly_stats:conv_rate"], feature_service: "driver_ranking", entities: [] }, grpc.status.INVALID_ARGUMENT, "features"],
      [{ features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "driver_id", string_values: ["x"] }] }, grpc.status.INVALID_ARGUMENT, "entities.driver_id[0]"],
      [{ features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "customer_id", string_values: ["x"] }] }, grpc.status.INVALID_ARGUMENT, "entities.driver_id[0]"],
      [{ features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "driver_id", int64_values: ["1"] }, { name: "driver_id", int64_values: ["2"] }] }, grpc.status.INVALID_ARGUMENT, "entities[1].name"],
      [{ features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "driver_id", int64_values: new Array(501).fill("1") }] }, grpc.status.INVALID_ARGUMENT, "entities"],
      [{ features: ["ghost:x"], entities: [] }, grpc.status.NOT_FOUND, "features[0]"],
      [{ features: ["driver_hourly_stats:speed"], entities: [] }, grpc.status.NOT_FOUND, "features[0]"],
      [{ feature_service: "nope", entities: [] }, grpc.status.NOT_FOUND, "feature_service"],
    ];
    for (const [request, code, path] of cases) {
      const { error } = await unaryCall(f.clients.quiver, "Lookup", request);
      expect({ code: error?.code, path: error?.metadata.get("x-quiver-error-path")[0] }).toEqual({ code, path });
      expect(error!.details.startsWith(path)).toBe(true);
    }
  });
});

describe("quiver.v1.FeatureService/Push", () => {
  test("push then read back; the admin token is required on writes", async () => {
    const row = { values: { customer_id: { string_val: "g-1" }, spend_1h: { double_val: 9.5 }, txn_count_1h: { int64_val: "4" }, chargeback_flag: { bool_val: true }, device_ids: { string_list_val: { val: ["a", "b"] } } } };
    const denied = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [row] });
    expect(denied.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const wrong = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [row] }, { metadata: { authorization: "Bearer nope" } });
    expect(wrong.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const ok = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [row] }, { metadata: AUTH });
    expect(ok.response).toEqual({ written: 1, ignored: 0 });
    const back = await unaryCall<LookupResponse>(f.clients.quiver, "Lookup", {
      features: ["fraud_signals:spend_1h", "fraud_signals:txn_count_1h", "fraud_signals:chargeback_flag", "fraud_signals:device_ids"],
      entities: [{ name: "customer_id", string_values: ["g-1"] }],
    });
    const cols = back.response!.columns;
    expect(cols[0]!.double_values).toEqual([9.5]);
    expect(cols[1]!.int64_values).toEqual(["4"]);
    expect(cols[2]!.bool_values).toEqual([true]);
    expect(cols[3]!.string_list_values).toEqual([{ val: ["a", "b"] }]);
    expect(cols[0]!.event_timestamps_ms).toEqual([String(NOW)]);
  });

  test("bad pushes name the field", async () => {
    const bad = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [{ values: { customer_id: { string_val: "x" }, spend_1h: { string_val: "lots" } } }] }, { metadata: AUTH });
    expect(bad.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // The message's field: the plain row's path (rows[0].spend_1h, rows[0].event_timestamp) is not in the proto.
    expect(bad.error?.metadata.get("x-quiver-error-path")[0]).toBe("rows[0].values.spend_1h");
    const past = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [{ values: { customer_id: { string_val: "x" } }, event_timestamp_ms: String(NOW + 86_400_000) }] }, { metadata: AUTH });
    expect(past.error?.details).toStartWith("rows[0].event_timestamp_ms: is 86400 s in the future");
    const unknown = await unaryCall(f.clients.quiver, "Push", { feature_view: "ghost", rows: [{ values: {} }] }, { metadata: AUTH });
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);
    const empty = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [] }, { metadata: AUTH });
    expect(empty.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // A Value with no field set is refused, as the Feast services do (it was stored as a null).
    const unset = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [{ values: { customer_id: { string_val: "x" }, spend_1h: {} } }] }, { metadata: AUTH });
    expect({ code: unset.error?.code, path: unset.error?.metadata.get("x-quiver-error-path")[0] }).toEqual({ code: grpc.status.INVALID_ARGUMENT, path: "rows[0].values.spend_1h" });
    // A "__proto__" column is an unknown column, as over HTTP (it replaced the row's prototype and vanished: written 1).
    const proto = await unaryCall(f.clients.quiver, "Push", { feature_view: "fraud_signals", rows: [{ values: { customer_id: { string_val: "x" }, ["__proto__"]: { double_val: 1 } } }] }, { metadata: AUTH });
    expect(proto.error?.details).toContain("__proto__");
  });
});

describe("feast.serving.ServingService", () => {
  test("GetFeastServingInfo answers a version", async () => {
    const { response } = await unaryCall<{ version: string }>(f.clients.feast, "GetFeastServingInfo", {});
    expect(response!.version).toMatch(/^quiver-/);
  });

  test("GetOnlineFeatures: join-key vectors first, one Value oneof per registry type, no field set when missing", async () => {
    const { response, error } = await unaryCall<FeastResponse>(f.clients.feast, "GetOnlineFeatures", {
      features: { val: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:is_active", "driver_hourly_stats:city", "driver_hourly_stats:recent_trip_ids", "driver_hourly_stats:rating_history"] },
      entities: { driver_id: { val: [{ int64_val: "1001" }, { int64_val: "7" }] } },
    });
    expect(error).toBeUndefined();
    const r = response!;
    expect(r.status).toBe(true);
    expect(r.metadata.feature_names.val).toEqual(["driver_id", "conv_rate", "avg_daily_trips", "is_active", "city", "recent_trip_ids", "rating_history"]);
    expect(r.results[0]!.values.map((v) => v.int64_val)).toEqual(["1001", "7"]);
    expect(r.results[0]!.statuses).toEqual(["PRESENT", "PRESENT"]);
    const oneofs = r.results.slice(1).map((vec) => vec.values[0]!.val);
    expect(oneofs).toEqual(["double_val", "int64_val", "bool_val", "string_val", "int64_list_val", "double_list_val"]);
    for (const vec of r.results.slice(1)) {
      expect(vec.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
      expect(vec.values[1]!.val).toBeUndefined();
      expect(vec.event_timestamps[0]).toEqual({ seconds: String((NOW - 1000) / 1000), nanos: 0 });
    }
  });

  test("feature services, full feature names and composite keys in request order", async () => {
    const { response } = await unaryCall<FeastResponse>(f.clients.feast, "GetOnlineFeatures", {
      feature_service: "driver_ranking",
      full_feature_names: true,
      entities: { driver_id: { val: [{ int64_val: "1001" }] } },
    });
    expect(response!.metadata.feature_names.val.slice(0, 2)).toEqual(["driver_id", "driver_hourly_stats__conv_rate"]);
    expect((response!.metadata as unknown as { feature_view_metadata: unknown[] }).feature_view_metadata).toEqual([]);
    const versions = await unaryCall<FeastResponse>(f.clients.feast, "GetOnlineFeatures", {
      features: { val: ["driver_hourly_stats:conv_rate", "fraud_signals:spend_1h", "driver_hourly_stats:city"] },
      entities: { driver_id: { val: [{ int64_val: "1001" }] }, customer_id: { val: [{ string_val: "c1" }] } },
      include_feature_view_version_metadata: true,
    });
    expect((versions.response!.metadata as unknown as { feature_view_metadata: unknown[] }).feature_view_metadata).toEqual([
      { name: "driver_hourly_stats", version: 1 },
      { name: "fraud_signals", version: 2 },
    ]);
    const pair = await unaryCall<FeastResponse>(f.clients.feast, "GetOnlineFeatures", {
      features: { val: ["driver_customer_affinity:trips_together"] },
      entities: { customer_id: { val: [{ string_val: "c0" }] }, driver_id: { val: [{ int64_val: "1001" }] } },
    });
    expect(pair.response!.metadata.feature_names.val).toEqual(["customer_id", "driver_id", "trips_together"]);
    expect(pair.response!.results[2]!.statuses).toEqual(["PRESENT"]);
  });

  test("errors: NOT_FOUND for unknown names, INVALID_ARGUMENT with the path for bad entities", async () => {
    const unknown = await unaryCall(f.clients.feast, "GetOnlineFeatures", { features: { val: ["ghost:x"] }, entities: { driver_id: { val: [{ int64_val: "1" }] } } });
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.error?.details).toBe('features[0]: unknown feature view "ghost"');
    const badKey = await unaryCall(f.clients.feast, "GetOnlineFeatures", { features: { val: ["driver_hourly_stats:conv_rate"] }, entities: { driver_id: { val: [{ double_val: 1.5 }] } } });
    expect(badKey.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badKey.error?.details).toStartWith("entities.driver_id[0]: expected int64");
    const unset = await unaryCall(f.clients.feast, "GetOnlineFeatures", { features: { val: ["driver_hourly_stats:conv_rate"] }, entities: { driver_id: { val: [{}] } } });
    expect(unset.error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "entities.driver_id[0]: no value set (a Value with none of its fields)" });
    const ragged = await unaryCall(f.clients.feast, "GetOnlineFeatures", {
      features: { val: ["driver_customer_affinity:trips_together"] },
      entities: { driver_id: { val: [{ int64_val: "1" }] }, customer_id: { val: [] } },
    });
    expect(ragged.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const none = await unaryCall(f.clients.feast, "GetOnlineFeatures", { entities: { driver_id: { val: [{ int64_val: "1" }] } } });
    expect(none.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    // A map entry named "__proto__" replaced the prototype of the object its columns were copied into and vanished: the
    // call answered OK with no rows. Now a column like any other (not a join key: refused, as over HTTP). Sent as bytes (a JS client's own encoder
    // drops such an entry the same way): features (2) { val (1) }, entities (3)
    // { key (1) "__proto__", value (2) RepeatedValue { val (1) Value { int64_val (4) 1001 } } }.
    const ref = Buffer.from("driver_hourly_stats:conv_rate");
    const features = Buffer.concat([Buffer.from([0x0a, ref.length]), ref]);
    const entry = Buffer.concat([Buffer.from([0x0a, 9]), Buffer.from("__proto__"), Buffer.from([0x12, 5, 0x0a, 3, 0x20, 0xe9, 0x07])]);
    const message = Buffer.concat([Buffer.from([0x12, features.length]), features, Buffer.from([0x1a, entry.length]), entry]);
    const raw = new grpc.Client(f.address, grpc.credentials.createInsecure());
    const proto = await new Promise<grpc.ServiceError | null>((resolve) => {
      raw.makeUnaryRequest("/feast.serving.ServingService/GetOnlineFeatures", (b: Buffer) => b, (b: Buffer) => b, message, new grpc.Metadata(), {}, (e) => resolve(e));
    });
    raw.close();
    expect(proto).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: "entities.__proto__: is not a join key of any entity in the registry" });
  });

  test("a join key named like an Object property is a column like any other (it was refused as given twice)", async () => {
    const { error } = await unaryCall(f.clients.quiver, "Lookup", {
      features: ["driver_hourly_stats:conv_rate"],
      entities: [
        { name: "driver_id", int64_values: int64s(1001) },
        { name: "constructor", int64_values: int64s(1) },
      ],
    });
    expect(error?.details ?? "").not.toContain("given twice");
  });
});

describe("GrpcFeatureServer (Feast's Python gRPC server)", () => {
  test("Push with text and typed features, WriteToOnlineStore, then GetOnlineFeatures reads them back", async () => {
    const push = await unaryCall(
      f.clients.feastPython,
      "Push",
      { stream_feature_view: "fraud_signals_push_source", features: { customer_id: "py-1", spend_1h: "12.5", txn_count_1h: "3", chargeback_flag: "True", event_timestamp: "2026-11-22T11:30:00Z" }, typed_features: { spend_30d: { double_val: 99 } }, to: "online" },
      { metadata: AUTH },
    );
    expect(push.error).toBeUndefined();
    expect(push.response).toEqual({ status: true });
    const write = await unaryCall(f.clients.feastPython, "WriteToOnlineStore", { feature_view_name: "fraud_signals", features: { customer_id: "py-2", device_ids: '["d1"]' } }, { metadata: AUTH });
    expect(write.response).toEqual({ status: true });
    const { response } = await unaryCall<FeastResponse>(f.clients.feastPython, "GetOnlineFeatures", {
      features: { val: ["fraud_signals:spend_1h", "fraud_signals:txn_count_1h", "fraud_signals:chargeback_flag", "fraud_signals:spend_30d", "fraud_signals:device_ids"] },
      entities: { customer_id: { val: [{ string_val: "py-1" }, { string_val: "py-2" }] } },
    });
    const first = response!.results.slice(1).map((vec) => vec.values[0]);
    // device_ids was not pushed: no field set (it was null_val, read here as the enum name "NULL").
    expect(first.map((v) => (v!.val === undefined ? undefined : v![v!.val as string]))).toEqual([12.5, "3", true, 99, undefined]);
    expect(response!.results[1]!.event_timestamps[0]).toEqual({ seconds: String(Date.UTC(2026, 10, 22, 11, 30) / 1000), nanos: 0 });
    expect(response!.results[5]!.values[1]).toMatchObject({ val: "string_list_val", string_list_val: { val: ["d1"] } });
  });

  test("typed_features: a Value with no field set is a null, as Feast writes None (ValueProto()) and reads it back (None)", async () => {
    // Feast's python_values_to_proto_values writes None as an empty Value, and its GetOnlineFeatures answers one
    // where there is no value (as Quiver's now does); a push holding one was refused ("no value set").
    const first = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "py-null", event_timestamp: "2026-11-22T11:30:00Z" }, typed_features: { spend_30d: { double_val: 7 }, spend_1h: { double_val: 2 } }, to: "online" }, { metadata: AUTH });
    expect(first.error).toBeUndefined();
    // The same columns later: one an empty Value, one null_val; both nulls.
    const push = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "py-null", event_timestamp: "2026-11-22T11:31:00Z" }, typed_features: { spend_30d: {}, spend_1h: { null_val: 0 } }, to: "online" }, { metadata: AUTH });
    expect(push.error).toBeUndefined();
    expect(push.response).toEqual({ status: true });
    const { response } = await unaryCall<FeastResponse>(f.clients.feastPython, "GetOnlineFeatures", {
      features: { val: ["fraud_signals:spend_30d", "fraud_signals:spend_1h"] },
      entities: { customer_id: { val: [{ string_val: "py-null" }] } },
    });
    expect(response!.results.slice(1).map((vec) => [vec.values[0]!.val, vec.statuses[0]])).toEqual([
      [undefined, "NULL_VALUE"],
      [undefined, "NULL_VALUE"],
    ]);
    // A join key is no less required: an empty one is refused naming it.
    const noKey = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", typed_features: { customer_id: {}, spend_30d: { double_val: 1 } }, to: "online" }, { metadata: AUTH });
    expect(noKey.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noKey.error?.metadata.get("x-quiver-error-path")).toEqual(["typed_features.customer_id"]);
  });

  test("writes check the token and the values, naming the column", async () => {
    const denied = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "x" } });
    expect(denied.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const bad = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "x", txn_count_1h: "many" } }, { metadata: AUTH });
    expect(bad.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.error?.details).toStartWith("features.txn_count_1h:");
    // A typed column is named where the client put it.
    const badTyped = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "x" }, typed_features: { spend_30d: { string_val: "lots" } } }, { metadata: AUTH });
    expect(badTyped.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badTyped.error?.details).toStartWith("typed_features.spend_30d: expected float64");
    const badTime = await unaryCall(f.clients.feastPython, "WriteToOnlineStore", { feature_view_name: "fraud_signals", features: { customer_id: "x" }, typed_features: { event_timestamp: { string_val: "2024-02-30T00:00:00Z" } } }, { metadata: AUTH });
    expect(badTime.error?.details).toStartWith("typed_features.event_timestamp: expected ms since epoch");
    expect(badTime.error?.metadata.get("x-quiver-error-path")).toEqual(["typed_features.event_timestamp"]);
    const unknownTyped = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "x" }, typed_features: { ghost: { double_val: 1 } } }, { metadata: AUTH });
    expect(unknownTyped.error?.metadata.get("x-quiver-error-path")).toEqual(["typed_features.ghost"]);
    const offline = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "x" }, to: "offline" }, { metadata: AUTH });
    expect(offline.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const unknownView = await unaryCall(f.clients.feastPython, "WriteToOnlineStore", { feature_view_name: "ghost", features: { customer_id: "x" } }, { metadata: AUTH });
    expect(unknownView.error?.code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("transport", () => {
  test("bytes that are not the message are INVALID_ARGUMENT, never a crash", async () => {
    const raw = new grpc.Client(f.address, grpc.credentials.createInsecure());
    // Field 15 with wire type 7, which does not exist: no decoder can read past it.
    const garbage = Buffer.from([0x7f, 0x01, 0x02]);
    const auth = new grpc.Metadata();
    auth.set("authorization", AUTH.authorization);
    for (const path of ["/quiver.v1.FeatureService/Lookup", "/feast.serving.ServingService/GetOnlineFeatures", "/GrpcFeatureServer/Push"]) {
      const error = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, garbage, auth, {}, (e) => resolve(e));
      });
      expect({ path, code: error?.code, details: error?.details }).toMatchObject({ path, code: grpc.status.INVALID_ARGUMENT });
    }
    raw.close();
  });

  test("a write without the token is UNAUTHENTICATED before its message is read: it learns nothing of validation or size limits", async () => {
    const raw = new grpc.Client(f.address, grpc.credentials.createInsecure());
    const call = (path: string, message: Buffer, metadata = new grpc.Metadata()) =>
      new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, message, metadata, {}, (e) => resolve(e));
      });
    const wrong = new grpc.Metadata();
    wrong.set("authorization", "Bearer nope");
    const before = await metricValue('quiver_grpc_requests_total{method="quiver.v1.FeatureService/Push",code="UNAUTHENTICATED"}');
    for (const path of ["/quiver.v1.FeatureService/Push", "/GrpcFeatureServer/Push", "/GrpcFeatureServer/WriteToOnlineStore"]) {
      // Not a message at all, and one over --max-body-bytes (65536): they were INVALID_ARGUMENT and RESOURCE_EXHAUSTED.
      for (const message of [Buffer.from([0x7f, 0x01, 0x02]), Buffer.alloc(70_000, 0x20)]) {
        for (const metadata of [new grpc.Metadata(), wrong]) {
          const error = await call(path, message, metadata);
          expect({ path, size: message.length, code: error?.code }).toEqual({ path, size: message.length, code: grpc.status.UNAUTHENTICATED });
          expect(error?.metadata.get("x-quiver-error-path")).toEqual(["(metadata).authorization"]);
        }
      }
    }
    expect(await metricValue('quiver_grpc_requests_total{method="quiver.v1.FeatureService/Push",code="UNAUTHENTICATED"}')).toBe(before + 4);
    raw.close();
  });

  test("string fields that are not UTF-8 are INVALID_ARGUMENT (they were read as U+FFFD: two keys stored as one)", async () => {
    const raw = new grpc.Client(f.address, grpc.credentials.createInsecure());
    // quiver.v1 LookupRequest: features (1) "driver_hourly_stats:conv_rate", entities (3) { name (1) "customer_id", string_values (3) "k\xfe" }.
    const feature = Buffer.from("driver_hourly_stats:conv_rate");
    const column = Buffer.concat([Buffer.from([0x0a, 11]), Buffer.from("customer_id"), Buffer.from([0x1a, 2, 0x6b, 0xfe])]);
    const message = Buffer.concat([Buffer.from([0x0a, feature.length]), feature, Buffer.from([0x1a, column.length]), column]);
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      raw.makeUnaryRequest("/quiver.v1.FeatureService/Lookup", (b: Buffer) => b, (b: Buffer) => b, message, new grpc.Metadata(), {}, (e) => resolve(e));
    });
    raw.close();
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toContain("a string field is not valid UTF-8");
  });

  test("a message over the size limit is RESOURCE_EXHAUSTED", async () => {
    const { error } = await unaryCall(f.clients.quiver, "Lookup", { features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "customer_id", string_values: ["x".repeat(70_000)] }] });
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  test("metrics count calls per method and code", async () => {
    await unaryCall(f.clients.feast, "GetFeastServingInfo", {});
    const text = await f.quiver.metrics.render();
    expect(text).toContain('quiver_grpc_requests_total{method="feast.serving.ServingService/GetFeastServingInfo",code="OK"}');
    expect(text).toContain('quiver_grpc_requests_total{method="quiver.v1.FeatureService/Lookup",code="INVALID_ARGUMENT"}');
    expect(text).toContain('quiver_grpc_request_duration_seconds_bucket{method="quiver.v1.FeatureService/Lookup",le="+Inf"}');
  });
});

describe("quiver.v1.FeatureService/Match", () => {
  interface Hit {
    entity: Record<string, { int64_val?: string; string_val?: string }>;
    score: number;
    distance: number;
    values: Record<string, unknown>[];
    statuses: string[];
  }
  test("claim matching answers the same neighbours as POST /v1/match, with typed feature values", async () => {
    const { response, error } = await unaryCall<{ feature_names: string[]; matches: Hit[] }>(f.clients.quiver, "Match", {
      view: "claims",
      entity: { keys: { claim_id: { int64_val: "7" } } },
      k: 4,
      features: ["claims:text", "claims:cluster"],
    });
    expect(error).toBeUndefined();
    expect(response!.feature_names).toEqual(["text", "cluster"]);
    expect(response!.matches).toHaveLength(4);
    for (const m of response!.matches) {
      expect(m.entity.claim_id!.int64_val).not.toBe("7");
      expect(m.statuses).toEqual(["PRESENT", "PRESENT"]);
      expect(m.values.map((v) => v.val)).toEqual(["string_val", "int64_val"]);
    }
    const http = await f.quiver.http.app.request("/v1/match", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ view: "claims", entity: { claim_id: 7 }, k: 4, features: ["claims:text", "claims:cluster"] }),
    });
    const body = (await http.json()) as { matches: { entity: { claim_id: number }; score: number; values: unknown[] }[] };
    expect(response!.matches.map((m) => Number(m.entity.claim_id!.int64_val))).toEqual(body.matches.map((m) => m.entity.claim_id));
    expect(response!.matches.map((m) => m.score)).toEqual(body.matches.map((m) => m.score));
    expect(response!.matches.map((m) => m.values[0]!.string_val)).toEqual(body.matches.map((m) => m.values[0]));
  });

  test("text queries and filters; bad input names the field", async () => {
    const text = await unaryCall<{ matches: Hit[] }>(f.clients.quiver, "Match", { view: "claims", text: "vaccine causes infertility", k: 2, filter: { verdict: { values: [{ string_val: "false" }] } }, features: ["claims:verdict"] });
    expect(text.error).toBeUndefined();
    for (const m of text.response!.matches) expect(m.values[0]!.string_val).toBe("false");
    const unknown = await unaryCall(f.clients.quiver, "Match", { view: "ghost", text: "x" });
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);
    const dims = await unaryCall(f.clients.quiver, "Match", { view: "claims", vector: { val: [1, 2, 3] } });
    expect(dims.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(dims.error?.metadata.get("x-quiver-error-path")[0]).toBe("vector");
    const none = await unaryCall(f.clients.quiver, "Match", { view: "claims" });
    expect(none.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("a matched entity's int64 key above 2^53 comes back as int64_val, as the registry types it", async () => {
    const text = "A claim whose id is past 2^53: the moon is made of blue cheese from Lisbon";
    const vec = new HashedNgramEmbedder(384).embedNow(text);
    const push = await f.quiver.http.app.request("/v1/push", {
      method: "POST",
      headers: { "content-type": "application/json", ...AUTH },
      body: JSON.stringify({ featureView: "claims", rows: [{ claim_id: "9007199254740993", text, verdict: "false", source: "x", language: "en", first_seen: "9223372036854775806", cluster: -1, embedding: vec, event_timestamp: NOW - 10 }] }),
    });
    expect(push.status).toBe(200);
    await f.quiver.vectors.idle();
    const { response, error } = await unaryCall<{ matches: Hit[] }>(f.clients.quiver, "Match", { view: "claims", vector: { val: vec }, k: 1, features: ["claims:first_seen"] });
    // An int64 feature past 2^53 in a Match answer: exact (protobufjs wrote a bigint as 0).
    expect(response!.matches[0]!.values[0]).toMatchObject({ int64_val: "9223372036854775806" });
    expect(error).toBeUndefined();
    // Picked by the decoded value's JS type: a decimal string, answered as string_val.
    expect(response!.matches[0]!.entity.claim_id).toMatchObject({ int64_val: "9007199254740993" });
    // Over HTTP an exact integer literal, as every int64 answer (it was the string "9007199254740993").
    const http = await f.quiver.http.app.request("/v1/match", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ view: "claims", vector: vec, k: 1 }) });
    expect(http.status).toBe(200);
    expect(await http.text()).toContain('"entity":{"claim_id":9007199254740993}');
  });
});

describe("the load generator against the gRPC edge", () => {
  test("runs grpc-lookup without pacing its own collections (an HTTP/2 stream's are too costly to pace), every call answered", async () => {
    const { runOnce } = await import("../loadtest/run.ts");
    const r = await runOnce({
      scenario: "grpc-lookup",
      target: new URL(`http://${f.address}`),
      mode: "open",
      rate: 100,
      connections: 4,
      durationMs: 500,
      warmupMs: 0,
      timeoutMs: 5000,
      gcPaceMs: 10,
      keys: "uniform",
      entities: 200,
      seed: "1",
      batch: 10,
      writeRatio: 0,
      view: "driver_hourly_stats",
      features: undefined,
      path: "/",
      maxRequests: 1000,
      label: undefined,
    });
    expect(r.generatorGc).toBeNull();
    expect(r.requests.errors).toBe(0);
    expect(r.requests.ok).toBe(r.requests.sent);
    expect(r.requests.ok).toBeGreaterThan(0);
  });
});

/** A load-generator gRPC channel to the fixture, recording what it tells the engine; `readies(n)` waits (bounded) for n ready events. */
async function recordedChannel() {
  const { GrpcConnection } = await import("../loadtest/grpc/connection.ts");
  const [host, port] = f.address.split(":");
  const events: string[] = [];
  let count = 0;
  let waiting: { n: number; wake: () => void } | undefined;
  const conn = new GrpcConnection(0, host!, Number(port), {
    onResponse: () => events.push("response"),
    onFailure: (_c, kind) => events.push(kind),
    onReady: () => {
      events.push("ready");
      count++;
      if (waiting !== undefined && count >= waiting.n) waiting.wake();
    },
  }, ["/quiver.v1.FeatureService/NoSuchMethod"]);
  await conn.connect();
  // Ready comes in the same callback as the failure; the bound only turns a lost channel into a clear failure.
  const readies = (n: number) => {
    const reached = new Promise<void>((wake) => {
      if (count >= n) wake();
      else waiting = { n, wake };
    });
    return Promise.race([reached, Bun.sleep(5000)]);
  };
  return { conn, events, readies };
}

test("a load-generator channel whose call ends in a non-OK status is ready again at once (a refusal does not take it out of the run)", async () => {
  const { conn, events, readies } = await recordedChannel();
  try {
    conn.send(new Uint8Array(0), performance.now());
    await readies(1);
    expect(events).toEqual(["grpc_UNIMPLEMENTED", "ready"]);
    expect(conn.busy).toBe(false);
  } finally {
    conn.stop();
  }
});

test("a load-generator channel reused after a timeout counts its next call, not the cancelled one's late CANCELLED", async () => {
  const { conn, events, readies } = await recordedChannel();
  try {
    conn.send(new Uint8Array(0), performance.now());
    conn.abort("timeout");
    // Reused at once, while the first call's cancellation is still on its way back.
    conn.send(new Uint8Array(0), performance.now());
    await readies(2);
    await Bun.sleep(50);
    expect(events).toEqual(["timeout", "ready", "grpc_UNIMPLEMENTED", "ready"]);
  } finally {
    conn.stop();
  }
});

test("a load-generator channel whose session ends mid-call fails that call as reset, connects again and is ready once", async () => {
  const { createServer } = await import("node:http2");
  const { GrpcConnection } = await import("../loadtest/grpc/connection.ts");
  // The first call's session is torn down by the server; later calls get a gRPC OK with an empty message.
  let streams = 0;
  const server = createServer();
  server.on("stream", (stream: ServerHttp2Stream) => {
    if (++streams === 1) {
      stream.session?.destroy();
      return;
    }
    stream.on("data", () => {});
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
  const events: string[] = [];
  let wake: (() => void) | undefined;
  const conn = new GrpcConnection(0, "127.0.0.1", port, {
    onResponse: (_c, status) => {
      events.push(`response ${status}`);
      wake?.();
    },
    onFailure: (_c, kind) => events.push(kind),
    onReady: () => {
      events.push("ready");
      wake?.();
    },
  }, ["/quiver.v1.FeatureService/Lookup"]);
  // Bounded waits: a lost channel shows as a missing event, not a hung test.
  const next = () => Promise.race([new Promise<void>((resolve) => (wake = resolve)), Bun.sleep(5000)]);
  try {
    await conn.connect();
    conn.send(new Uint8Array(3), performance.now());
    await next();
    expect(events).toEqual(["reset", "ready"]);
    conn.send(new Uint8Array(3), performance.now());
    await next();
    // A second ready here would put the channel twice among the engine's free ones (two calls in flight).
    await Bun.sleep(100);
    expect(events).toEqual(["reset", "ready", "response 200"]);
    expect(streams).toBe(2);
  } finally {
    conn.stop();
    server.close();
  }
});
