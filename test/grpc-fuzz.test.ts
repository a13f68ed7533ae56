import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { loadProtos } from "../src/api/grpc/protos.ts";
import { grpc, unaryCall } from "./support/grpc-client.ts";
import { type GrpcFixture, startGrpcFixture } from "./support/grpc-fixture.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

let f: GrpcFixture;
let raw: grpc.Client;
beforeAll(async () => {
  f = await startGrpcFixture();
  raw = new grpc.Client(f.address, grpc.credentials.createInsecure());
}, 120_000);
afterAll(async () => {
  raw.close();
  await f.close();
});

const protos = loadProtos();

/** Methods, with the message type their requests are built from. */
const METHODS: [string, string][] = [
  ["/quiver.v1.FeatureService/Lookup", "quiver.v1.LookupRequest"],
  ["/quiver.v1.FeatureService/Push", "quiver.v1.PushRequest"],
  ["/feast.serving.ServingService/GetOnlineFeatures", "feast.serving.GetOnlineFeaturesRequest"],
  ["/GrpcFeatureServer/Push", "PushRequest"],
  ["/GrpcFeatureServer/WriteToOnlineStore", "WriteToOnlineStoreRequest"],
];

const name = fc.constantFrom("driver_id", "customer_id", "conv_rate", "spend_1h", "device_ids", "event_timestamp", "embedding", "x", "");
const ref = fc.oneof(fc.constantFrom("driver_hourly_stats:conv_rate", "customer_profile:embedding", "fraud_signals:device_ids", "x:y", ":", ""), fc.string());
const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String), fc.constantFrom("0", "1001", "-1"));
const value = fc.oneof(
  fc.record({ int64_val: int64 }),
  fc.record({ double_val: fc.double() }),
  fc.record({ string_val: fc.string() }),
  fc.record({ bool_val: fc.boolean() }),
  fc.record({ int32_val: fc.integer() }),
  fc.record({ bytes_val: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ null_val: fc.constant(0) }),
  fc.record({ int64_list_val: fc.record({ val: fc.array(int64, { maxLength: 4 }) }) }),
  fc.record({ double_list_val: fc.record({ val: fc.array(fc.double(), { maxLength: 9 }) }) }),
  fc.record({ string_list_val: fc.record({ val: fc.array(fc.string(), { maxLength: 3 }) }) }),
  fc.record({ unix_timestamp_val: int64 }),
  fc.constant({}),
);

/** Message-shaped requests with any values in any field (plain objects for protobufjs's fromObject). */
const MESSAGES: Record<string, fc.Arbitrary<unknown>> = {
  "quiver.v1.LookupRequest": fc.record(
    {
      features: fc.array(ref, { maxLength: 4 }),
      feature_service: fc.constantFrom("driver_ranking", "fraud_detection", "nope", ""),
      entities: fc.array(fc.record({ name, int64_values: fc.array(int64, { maxLength: 4 }), string_values: fc.array(fc.string(), { maxLength: 4 }) }, { requiredKeys: ["name"] }), { maxLength: 3 }),
      fill_defaults: fc.boolean(),
      full_feature_names: fc.boolean(),
      id: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
      timeout_ms: fc.nat(50),
    },
    { requiredKeys: [] },
  ),
  "quiver.v1.PushRequest": fc.record(
    { feature_view: fc.constantFrom("fraud_signals", "driver_hourly_stats", "ghost", ""), rows: fc.array(fc.record({ values: fc.dictionary(name, value), event_timestamp_ms: int64 }, { requiredKeys: [] }), { maxLength: 3 }) },
    { requiredKeys: [] },
  ),
  "feast.serving.GetOnlineFeaturesRequest": fc.record(
    {
      features: fc.record({ val: fc.array(ref, { maxLength: 4 }) }),
      feature_service: fc.constantFrom("driver_ranking", "nope"),
      entities: fc.dictionary(name, fc.record({ val: fc.array(value, { maxLength: 4 }) })),
      full_feature_names: fc.boolean(),
    },
    { requiredKeys: [] },
  ),
  PushRequest: fc.record(
    { features: fc.dictionary(name, fc.string()), typed_features: fc.dictionary(name, value), stream_feature_view: fc.constantFrom("fraud_signals", "fraud_signals_push_source", "ghost", ""), to: fc.constantFrom("online", "offline", "", "x") },
    { requiredKeys: [] },
  ),
  WriteToOnlineStoreRequest: fc.record({ features: fc.dictionary(name, fc.string()), typed_features: fc.dictionary(name, value), feature_view_name: fc.constantFrom("customer_profile", "fraud_signals", "") }, { requiredKeys: [] }),
};

function send(path: string, bytes: Buffer): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e) => resolve(e));
  });
}

const CLIENT_FAULTS = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.RESOURCE_EXHAUSTED]);

/**
 * Did this Quiver lookup ask a budget of its own (timeout_ms, down to 1 ms here)? Its answer may then be
 * DEADLINE_EXCEEDED: the client's budget, missed on a loaded machine (the suite beside four busy loops on
 * two cores gave one), not a fault of the server. Undecodable bytes asked nothing.
 */
function askedBudget(path: string, bytes: Buffer): boolean {
  if (path !== "/quiver.v1.FeatureService/Lookup" && path !== "/quiver.v1.FeatureService/LookupStream") return false;
  try {
    return Number((protos.type("quiver.v1.LookupRequest").decode(bytes) as unknown as { timeout_ms?: number }).timeout_ms ?? 0) > 0;
  } catch {
    return false;
  }
}

const accepted = (code: number, budget: boolean): boolean => CLIENT_FAULTS.has(code) || (budget && code === grpc.status.DEADLINE_EXCEEDED);

test("no message, well-formed or not, gets anything but OK or a client-fault status", async () => {
  const structured = fc.constantFrom(...METHODS).chain(([path, type]) =>
    MESSAGES[type]!.map((obj) => {
      const t = protos.type(type);
      return [path, Buffer.from(t.encode(t.fromObject(obj as Record<string, unknown>)).finish())] as const;
    }),
  );
  const bytes = fc.tuple(fc.constantFrom(...METHODS.map((m) => m[0])), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)));
  await fc.assert(
    fc.asyncProperty(fc.oneof(structured, bytes), async ([path, body]) => {
      const error = await send(path, body);
      if (error !== null) expect({ path, code: error.code, ok: accepted(error.code, askedBudget(path, body)) }).toEqual({ path, code: error.code, ok: true });
    }),
    { numRuns: 500, seed: 20261123 },
  );
  const health = await unaryCall(f.clients.health, "Check", { service: "" });
  expect(health.response).toEqual({ status: "SERVING" });
}, 120_000);

test("LookupStream: any sequence of messages, well-formed or not, gets one answer each and only client-fault errors", async () => {
  const reqType = protos.type("quiver.v1.LookupRequest");
  const resType = protos.type("quiver.v1.LookupResponse");
  const message = fc.oneof(
    { weight: 3, arbitrary: MESSAGES["quiver.v1.LookupRequest"]!.map((obj) => Buffer.from(reqType.encode(reqType.fromObject(obj as Record<string, unknown>)).finish())) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)) },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 12 }), async (messages) => {
      const call = raw.makeBidiStreamRequest("/quiver.v1.FeatureService/LookupStream", (b: Buffer) => b, (b: Buffer) => b, new grpc.Metadata(), { deadline: Date.now() + 20_000 });
      const answers: Buffer[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (b: Buffer) => answers.push(b));
        call.on("end", () => resolve());
        call.on("error", reject);
      });
      for (const m of messages) call.write(m);
      call.end();
      await ended;
      expect(answers.length).toBe(messages.length);
      // Answers come in completion order, so a late one is matched to "some message asked a budget".
      const budget = messages.some((m) => askedBudget("/quiver.v1.FeatureService/LookupStream", m));
      for (const a of answers) {
        const res = resType.toObject(resType.decode(a)) as { error?: { status: number } };
        if (res.error) expect({ status: res.error.status, ok: accepted(res.error.status, budget) }).toEqual({ status: res.error.status, ok: true });
      }
    }),
    { numRuns: 40, seed: 20261124 },
  );
}, 120_000);

test("a request quoting a 100 KB name gets a bounded error and does not fail the other calls on its connection", async () => {
  // Messages up to 1 MB, so a 100 KB name reaches the handlers (the shared fixture caps them at 64 KB).
  const big = await startGrpcFixture(["--max-body-bytes", "1048576"]);
  const client = new grpc.Client(big.address, grpc.credentials.createInsecure());
  const call = (path: string, body: Buffer, trailers?: grpc.Metadata[]) =>
    new Promise<grpc.ServiceError | null>((resolve) => {
      const c = client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e) => resolve(e));
      c.on("status", (s) => trailers?.push(s.metadata));
    });
  try {
    const long = "x".repeat(100_000);
    const lookup = protos.type("quiver.v1.LookupRequest");
    const health = protos.type("grpc.health.v1.HealthCheckRequest");
    const encode = (t: ReturnType<typeof protos.type>, o: Record<string, unknown>) => Buffer.from(t.encode(t.fromObject(o)).finish());
    const bad: [string, Buffer, grpc.status][] = [
      ["/quiver.v1.FeatureService/Lookup", encode(lookup, { features: [`${long}:f`], entities: [{ name: "driver_id", int64_values: ["1"] }] }), grpc.status.NOT_FOUND],
      // A name outside printable ASCII lands in the path trailer, escaped.
      ["/quiver.v1.FeatureService/Lookup", encode(lookup, { features: ["driver_hourly_stats:conv_rate"], entities: [{ name: `é${long}\n`, int64_values: ["1"] }] }), grpc.status.INVALID_ARGUMENT],
      ["/grpc.health.v1.Health/Check", encode(health, { service: long }), grpc.status.NOT_FOUND],
    ];
    const good = encode(lookup, { features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "driver_id", int64_values: Array.from({ length: 200 }, (_, i) => String(1001 + i)) }] });
    for (const [path, body, code] of bad) {
      const trailers: grpc.Metadata[] = [];
      const [error, ...rest] = await Promise.all([call(path, body, trailers), ...Array.from({ length: 10 }, () => call("/quiver.v1.FeatureService/Lookup", good))]);
      expect({ path, code: error?.code }).toEqual({ path, code });
      expect(error!.details.length).toBeLessThanOrEqual(1024);
      for (const p of trailers[0]?.get("x-quiver-error-path") ?? []) expect(String(p)).toMatch(/^[ -~]{1,256}$/);
      expect(rest).toEqual(Array.from({ length: 10 }, () => null));
    }
  } finally {
    client.close();
    await big.close();
  }
}, 60_000);

test("half a surrogate pair quoted in an error gets INVALID_ARGUMENT with a well-formed message, and the server keeps serving", async () => {
  // Unit 39 is the first half of an emoji: error messages quote a value's first 40 units. grpc-js percent-encodes the
  // status message and threw on the half pair; from a handler that failed after an await, that ended the process.
  const cut = `${"a".repeat(39)}\u{1F600}tail`;
  const calls: [grpc.Client, string, unknown][] = [
    [f.clients.quiver, "Push", { feature_view: "driver_hourly_stats", rows: [{ values: { driver_id: { int64_val: "1001" }, conv_rate: { string_val: cut } } }] }],
    [f.clients.feastPython, "Push", { stream_feature_view: "driver_hourly_stats", features: { driver_id: "1001", avg_daily_trips: cut } }],
    // A list column's JSON text holding an escaped lone surrogate: nothing cut, the value itself is half a pair.
    [f.clients.feastPython, "Push", { stream_feature_view: "fraud_signals", features: { customer_id: "1", device_ids: '["\\ud800"]' } }],
    [f.clients.quiver, "Lookup", { features: ["driver_hourly_stats:conv_rate"], entities: [{ name: "driver_id", string_values: [cut] }] }],
    [f.clients.feast, "GetOnlineFeatures", { features: { val: ["driver_hourly_stats:conv_rate"] }, entities: { driver_id: { val: [{ string_val: cut }] } } }],
  ];
  for (const [client, method, request] of calls) {
    const { error } = await unaryCall(client, method, request, { deadlineMs: 10_000 });
    expect({ method, code: error?.code }).toEqual({ method, code: grpc.status.INVALID_ARGUMENT });
    expect(error!.details.isWellFormed()).toBe(true);
    expect(error!.details.length).toBeGreaterThan(20);
  }
  const health = await unaryCall(f.clients.health, "Check", { service: "" });
  expect(health.response).toEqual({ status: "SERVING" });
});
