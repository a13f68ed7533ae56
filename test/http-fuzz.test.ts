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

test("no body, content type, accept or budget header makes any route answer 5xx, or answer in another form than it says", async () => {
  const { encode, decode } = await import("@msgpack/msgpack");
  const lookup = { features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"], entities: [{ driver_id: 1001 }, { driver_id: 1002 }] };
  const valid = [lookup, { features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001, 1002] } }, { feature_view: "driver_hourly_stats", rows: [{ driver_id: 1001, conv_rate: 0.5 }] }];
  const validMsgpack = valid.map((v) => encode(v));
  // Valid MessagePack requests with bytes overwritten and cut short: the bounded reader's refusals, through the routes.
  const mangled = fc
    .tuple(fc.constantFrom(...validMsgpack), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat(), { nil: undefined }))
    .map(([b, edits, cut]) => {
      const out = Uint8Array.from(b);
      for (const [i, v] of edits) out[i % out.length] = v;
      return cut === undefined ? out : out.subarray(0, cut % (out.length + 1));
    });
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    mangled,
    fc.constantFrom(...validMsgpack),
    fc.constantFrom(...valid).map((v) => new TextEncoder().encode(JSON.stringify(v))),
  );
  const contentType = fc.constantFrom("application/json", "application/msgpack", "application/x-msgpack", "text/plain", "", "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;;;", "x");
  const accept = fc.constantFrom(undefined, "application/msgpack", "application/json", "*/*", "application/msgpack;q=0, application/json;q=0", "application/msgpack;q=abc", ",,,");
  const budget = fc.constantFrom(undefined, "0", "-1", "1e309", "abc", "50", " 50 ", "99999999999", "1.5", "");
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES, "/v1/match"), body, contentType, accept, budget, async (route, b, type, acc, ms) => {
      const headers: Record<string, string> = {};
      if (type !== "") headers["content-type"] = type;
      if (acc !== undefined) headers.accept = acc;
      if (ms !== undefined) headers["x-quiver-timeout-ms"] = ms;
      // The hot routes as Bun.serve runs them (native), the rest through Hono.
      const native = q.http.nativeRoutes[route]?.POST;
      const res = await (native ? native(new Request(`http://quiver${route}`, { method: "POST", body: b, headers })) : q.http.app.request(route, { method: "POST", body: b, headers }));
      expect(res.status).toBeLessThan(500);
      const form = res.headers.get("content-type") ?? "";
      const bytes = new Uint8Array(await res.arrayBuffer());
      const parsed = (form.includes("msgpack") ? decode(bytes) : JSON.parse(new TextDecoder().decode(bytes))) as Record<string, unknown>;
      expect(form.includes("msgpack") || form.includes("json")).toBe(true);
      if (res.status >= 400) expect(parsed.error).toBeDefined();
    }),
    { numRuns: 800, seed: 20261206 },
  );
});
