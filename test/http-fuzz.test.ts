import { afterAll, beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";

let q: Quiver;
beforeAll(async () => {
  q = await buildQuiver(loadConfig(["--demo-entities", "50"], {}));
});
afterAll(() => q.close());

const ROUTES = ["/v1/lookup", "/v1/push", "/get-online-features", "/push", "/write-to-online-store"];

/** Bodies shaped like real requests but with any values in any field. */
const requestLike = fc.record(
  {
    features: fc.oneof(fc.array(fc.constantFrom("driver_hourly_stats:conv_rate", "customer_profile:embedding", "x:y", ":", "")), fc.anything()),
    featureService: fc.oneof(fc.constant("driver_ranking"), fc.anything()),
    feature_service: fc.anything(),
    featureView: fc.oneof(fc.constant("driver_hourly_stats"), fc.anything()),
    feature_view_name: fc.constantFrom("driver_hourly_stats", "fraud_signals", 3),
    push_source_name: fc.constantFrom("fraud_signals", "", null),
    entities: fc.oneof(fc.array(fc.dictionary(fc.constantFrom("driver_id", "customer_id", "x"), fc.jsonValue())), fc.dictionary(fc.constantFrom("driver_id", "customer_id"), fc.array(fc.jsonValue())), fc.anything()),
    rows: fc.array(fc.dictionary(fc.constantFrom("driver_id", "conv_rate", "recent_trip_ids", "event_timestamp", "city"), fc.jsonValue())),
    df: fc.dictionary(fc.constantFrom("customer_id", "spend_1h", "event_timestamp", "device_ids"), fc.array(fc.jsonValue())),
    fillDefaults: fc.anything(),
    to: fc.constantFrom("online", "offline", 7),
  },
  { requiredKeys: [] },
);

test("no request body makes any route answer 5xx or anything but JSON", async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), fc.oneof(requestLike.map((b) => JSON.stringify(b)), fc.string(), fc.jsonValue().map((v) => JSON.stringify(v) ?? "null")), async (route, body) => {
      const res = await q.http.app.request(route, { method: "POST", body, headers: { "content-type": "application/json" } });
      expect(res.status).toBeLessThan(500);
      const parsed = (await res.json()) as Record<string, unknown>;
      if (res.status >= 400) expect(parsed.error).toBeDefined();
    }),
    { numRuns: 600, seed: 20261122 },
  );
  // The store still answers the demo data after all that.
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: ["driver_hourly_stats:city"], entities: [{ driver_id: 1002 }] }),
  });
  expect(res.status).toBe(200);
});
