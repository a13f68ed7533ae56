import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { grpc, unaryCall } from "./support/grpc-client.ts";
import { type GrpcFixture, NOW, startGrpcFixture } from "./support/grpc-fixture.ts";

// A real server on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * Feast's push sources (registry `pushSources:`): the example registry's
 * `customer_events_push` feeds fraud_signals and customer_profile (both keyed
 * by customer_id) and reads its event time from `event_ts`. Pushed over
 * Feast's HTTP /push and GrpcFeatureServer.Push on the embedded store, read
 * back through /get-online-features.
 */
let f: GrpcFixture;
beforeAll(async () => {
  f = await startGrpcFixture();
}, 120_000);
afterAll(async () => {
  await f.close();
});

const post = (path: string, body: unknown) => f.quiver.http.app.request(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

interface FeastAnswer {
  metadata: { feature_names: string[] };
  results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
}

/** Every feature column of both views (fraud_signals, customer_profile) for `n` rows, with `overrides`. */
function fullFrame(customers: string[], overrides: Record<string, unknown[]> = {}): Record<string, unknown[]> {
  const each = (v: unknown) => customers.map(() => v);
  return {
    customer_id: customers,
    spend_1h: each(1),
    spend_30d: each(30),
    txn_count_1h: each(1),
    distinct_cards_7d: each(1),
    chargeback_flag: each(false),
    risk_score: each(0.2),
    device_ids: each(["d1"]),
    lifetime_spend: each(100),
    orders_30d: each(1),
    segment: each("regular"),
    is_premium: each(false),
    favorite_categories: each([]),
    signup_days: each(10),
    embedding: each([1, 0, 0, 0, 0, 0, 0, 0]),
    ...overrides,
  };
}

/** The same as text, for GrpcFeatureServer.Push's `features` (lists as JSON text). */
function fullText(customer: string, overrides: Record<string, string> = {}): Record<string, string> {
  const frame = fullFrame([customer]);
  const out: Record<string, string> = {};
  for (const [name, [v]] of Object.entries(frame)) if (v !== null) out[name] = typeof v === "string" ? v : JSON.stringify(v);
  return { ...out, ...overrides };
}

const READ = ["fraud_signals:spend_1h", "fraud_signals:txn_count_1h", "customer_profile:segment", "customer_profile:orders_30d"];

async function read(customers: string[]): Promise<FeastAnswer> {
  const res = await post("/get-online-features", { features: READ, entities: { customer_id: customers } });
  expect(res.status).toBe(200);
  return (await res.json()) as FeastAnswer;
}

/** Every requested feature of these customers is NOT_FOUND: nothing was written for them. */
async function expectNothingWritten(customers: string[]): Promise<void> {
  const answer = await read(customers);
  for (const column of answer.results.slice(1)) expect(column.statuses).toEqual(customers.map(() => "NOT_FOUND"));
}

describe("POST /push to a declared push source", () => {
  test("fans one frame out to both views, each taking its features, with the event time from timestampField", async () => {
    const df = fullFrame(["ps-1", "ps-2"], {
      spend_1h: [12.5, 3],
      txn_count_1h: [4, 1],
      segment: ["vip", "regular"],
      orders_30d: [9, 2],
      event_ts: ["2026-11-22T11:30:00Z", "2026-11-22T11:31:00Z"],
      created: ["2026-11-22T11:32:00Z", null],
    });
    const res = await post("/push", { push_source_name: "customer_events_push", df, to: "online" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ written: 4, ignored: 0 });

    const answer = await read(["ps-1", "ps-2"]);
    expect(answer.metadata.feature_names).toEqual(["customer_id", "spend_1h", "txn_count_1h", "segment", "orders_30d"]);
    expect(answer.results.slice(1).map((c) => c.values)).toEqual([[12.5, 3], [4, 1], ["vip", "regular"], [9, 2]]);
    for (const column of answer.results.slice(1)) {
      expect(column.statuses).toEqual(["PRESENT", "PRESENT"]);
      expect(column.event_timestamps).toEqual(["2026-11-22T11:30:00Z", "2026-11-22T11:31:00Z"]);
    }
    // The same frame again: every view's rows are as old as what is stored, so all are ignored (summed).
    expect(await (await post("/push", { push_source_name: "customer_events_push", df })).json()).toEqual({ written: 0, ignored: 4 });
  });

  test("a frame lacking some features of a view is a 400 naming them, and nothing is written: a view's row is written whole", async () => {
    // Written, the row would have held null for each left out: one payments event wiped a customer's profile.
    const { lifetime_spend: _a, signup_days: _b, ...partial } = fullFrame(["ps-3"]);
    const res = await post("/push", { push_source_name: "customer_events_push", df: partial });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toStartWith('df: lacks features of view "customer_profile": lifetime_spend, signup_days');
    await expectNothingWritten(["ps-3"]);
    // Columns of null say "no value" on purpose; no event time: stamped with the server's clock.
    const explicit = await post("/push", { push_source_name: "customer_events_push", df: fullFrame(["ps-3"], { orders_30d: [null], segment: ["new"] }) });
    expect(await explicit.json()).toEqual({ written: 2, ignored: 0 });
    const answer = await read(["ps-3"]);
    expect(answer.results.slice(1).map((c) => [c.values[0], c.statuses[0]])).toEqual([[1, "PRESENT"], [1, "PRESENT"], ["new", "PRESENT"], [null, "NULL_VALUE"]]);
    expect(answer.results[1]!.event_timestamps[0]).toBe(new Date(NOW).toISOString().replace(".000", ""));
  });

  test("a column no view reads is a 400 naming it (event_timestamp too, when the source's time column is another), and nothing is written", async () => {
    const typo = await post("/push", { push_source_name: "customer_events_push", df: fullFrame(["ps-bad-1"], { spend1h: [2] }) });
    expect(typo.status).toBe(400);
    expect(await typo.json()).toEqual({
      error: 'df.spend1h: no feature view of push source "customer_events_push" ("fraud_signals", "customer_profile") has a feature or join key "spend1h"',
      status_code: 400,
    });
    const wrongTime = await post("/push", { push_source_name: "customer_events_push", df: fullFrame(["ps-bad-1"], { event_timestamp: ["2026-11-22T11:00:00Z"] }) });
    expect(wrongTime.status).toBe(400);
    expect(((await wrongTime.json()) as { error: string }).error).toStartWith('df.event_timestamp: push source "customer_events_push" reads its event time from "event_ts" (its timestampField)');
    await expectNothingWritten(["ps-bad-1"]);
  });

  test("a view the frame holds none of the features of is a 400 naming the view and its features, and the other view is not written", async () => {
    const { lifetime_spend: _1, orders_30d: _2, segment: _3, is_premium: _4, favorite_categories: _5, signup_days: _6, embedding: _7, ...fraudOnly } = fullFrame(["ps-bad-2"]);
    const res = await post("/push", { push_source_name: "customer_events_push", df: fraudOnly });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: string };
    expect(error).toStartWith('df: lacks every feature of view "customer_profile": lifetime_spend, orders_30d, segment, is_premium, favorite_categories, signup_days, embedding');
    await expectNothingWritten(["ps-bad-2"]);
  });

  test("a bad value for the second view leaves the first view unwritten too (all or nothing)", async () => {
    const res = await post("/push", { push_source_name: "customer_events_push", df: fullFrame(["ps-bad-3", "ps-bad-4"], { orders_30d: [1, "many"] }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toStartWith("df.orders_30d[1]: expected int64");
    const badTime = await post("/push", { push_source_name: "customer_events_push", df: fullFrame(["ps-bad-3"], { event_ts: ["yesterday"] }) });
    expect(badTime.status).toBe(400);
    expect(((await badTime.json()) as { error: string }).error).toStartWith("df.event_ts[0]:");
    await expectNothingWritten(["ps-bad-3", "ps-bad-4"]);
  });

  test("Quiver's own naming still works: a view's name and <view>_push_source with event_timestamp; /write-to-online-store names views only", async () => {
    const byView = await post("/push", { push_source_name: "fraud_signals", df: { customer_id: ["legacy-1"], spend_1h: [5], event_timestamp: ["2026-11-22T11:00:00Z"] } });
    expect(await byView.json()).toEqual({ written: 1, ignored: 0 });
    const bySuffix = await post("/push", { push_source_name: "customer_profile_push_source", df: { customer_id: ["legacy-1"], segment: ["old"], event_timestamp: ["2026-11-22T11:00:00Z"] } });
    expect(await bySuffix.json()).toEqual({ written: 1, ignored: 0 });
    const answer = await read(["legacy-1"]);
    expect(answer.results[1]).toEqual({ values: [5], statuses: ["PRESENT"], event_timestamps: ["2026-11-22T11:00:00Z"] });
    expect(answer.results[3]).toEqual({ values: ["old"], statuses: ["PRESENT"], event_timestamps: ["2026-11-22T11:00:00Z"] });
    const write = await post("/write-to-online-store", { feature_view_name: "customer_events_push", df: { customer_id: ["legacy-2"], spend_1h: [1] } });
    expect(write.status).toBe(400);
    expect(await write.json()).toEqual({
      error: 'feature_view_name: "customer_events_push" is a push source, not a feature view: push to it with /push (push_source_name); this names one feature view',
      status_code: 400,
    });
  });

  test("GET /v1/registry lists the push sources", async () => {
    const res = await f.quiver.http.app.request("/v1/registry");
    const body = (await res.json()) as { pushSources: unknown };
    expect(body.pushSources).toEqual([
      { name: "customer_events_push", description: expect.any(String), featureViews: ["fraud_signals", "customer_profile"], timestampField: "event_ts" },
    ]);
  });
});

describe("GrpcFeatureServer.Push to a declared push source", () => {
  test("fans the row out to both views: text columns parsed by their view's type, the event time from event_ts", async () => {
    const { orders_30d: _o, ...rest } = fullText("grpc-ps-1", { spend_1h: "7.5", segment: "vip", event_ts: "2026-11-22T11:45:00Z" });
    const push = await unaryCall(f.clients.feastPython, "Push", {
      stream_feature_view: "customer_events_push",
      features: rest,
      typed_features: { orders_30d: { int64_val: "6" } },
      to: "online",
    });
    expect(push.error).toBeUndefined();
    expect(push.response).toEqual({ status: true });
    // A typed event_ts in seconds (unix_timestamp_val), as for event_timestamp.
    const typedTime = await unaryCall(f.clients.feastPython, "Push", {
      stream_feature_view: "customer_events_push",
      features: fullText("grpc-ps-2", { txn_count_1h: "3", spend_1h: "2", segment: "basic" }),
      typed_features: { event_ts: { unix_timestamp_val: String(Date.UTC(2026, 10, 22, 11, 50) / 1000) } },
    });
    expect(typedTime.error).toBeUndefined();
    const answer = await read(["grpc-ps-1", "grpc-ps-2"]);
    expect(answer.results.slice(1).map((c) => c.values)).toEqual([[7.5, 2], [1, 3], ["vip", "basic"], [6, 1]]);
    expect(answer.results[4]!.event_timestamps).toEqual(["2026-11-22T11:45:00Z", "2026-11-22T11:50:00Z"]);
    expect(answer.results[1]!.event_timestamps[0]).toBe("2026-11-22T11:45:00Z");
  });

  test("an unknown column or a view without features is refused naming it, and nothing is written", async () => {
    const typo = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "customer_events_push", features: fullText("grpc-bad", { spend1h: "2" }) });
    expect(typo.error?.code).toBe(grpc.status.NOT_FOUND);
    expect(typo.error?.metadata.get("x-quiver-error-path")).toEqual(["features.spend1h"]);
    const missing = await unaryCall(f.clients.feastPython, "Push", { stream_feature_view: "customer_events_push", features: { customer_id: "grpc-bad", segment: "x" } });
    expect(missing.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(missing.error?.details).toStartWith('features: lacks every feature of view "fraud_signals"');
    await expectNothingWritten(["grpc-bad"]);
  });
});
