import { afterAll, beforeAll, expect, test } from "bun:test";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";

/** Admission control, the lookup budget header, readiness detail and the anomaly route, through the HTTP app. */

let q: Quiver;
beforeAll(async () => {
  q = await buildQuiver(loadConfig(["--demo-entities", "100", "--max-concurrency", "1", "--admission-queue", "0", "--admin-token", "t0k"], {}));
});
afterAll(async () => {
  await q.close();
});

const LOOKUP = JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] });

function stalledBody(): { body: ReadableStream<Uint8Array>; finish: () => void } {
  let finish!: () => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(LOOKUP.slice(0, 10)));
      finish = () => {
        controller.enqueue(new TextEncoder().encode(LOOKUP.slice(10)));
        controller.close();
      };
    },
  });
  return { body, finish };
}

test("beyond the concurrency limit a lookup gets 503 + Retry-After at once; health and metrics are never shed", async () => {
  // Hold the only slot as an admitted request in flight does (the gRPC edge shares this admission).
  const held = q.admission.acquire();
  expect(typeof held === "number" && held >= 0).toBe(true);
  const started = performance.now();
  const shed = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: LOOKUP });
  const tookMs = performance.now() - started;
  expect(shed.status).toBe(503);
  expect(shed.headers.get("retry-after")).toBe("1");
  expect(((await shed.json()) as { error: { code: string } }).error.code).toBe("overloaded");
  const feast = await q.http.app.request("/get-online-features", { method: "POST", body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] } }) });
  expect(feast.status).toBe(503);
  expect(((await feast.json()) as { status_code: number }).status_code).toBe(503);
  // A match is admitted as gRPC's Match is (it was served past the limit).
  const match = await q.http.app.request("/v1/match", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ view: "claims", text: "vaccines", k: 1 }) });
  expect(match.status).toBe(503);
  expect(((await match.json()) as { error: { code: string } }).error.code).toBe("overloaded");
  expect((await q.http.app.request("/readyz")).status).toBe(200);
  expect((await q.http.app.request("/healthz")).status).toBe(200);
  const metrics = await (await q.http.app.request("/metrics")).text();
  expect(metrics).toContain('quiver_admission_shed_total{route="/v1/lookup",reason="concurrency_limit"} 1');
  // And as answers of their routes: a dashboard on the HTTP series saw no errors while requests were refused.
  expect(metrics).toContain('quiver_http_requests_total{route="/v1/lookup",status="503"} 1');
  expect(metrics).toContain('quiver_http_requests_total{route="/get-online-features",status="503"} 1');
  expect(metrics).toContain('quiver_http_server_errors_total{route="/v1/lookup",code="overloaded"} 1');
  expect(metrics).toMatch(/quiver_inflight_requests 1\n/);
  console.log(JSON.stringify({ shedAnsweredInMs: Math.round(tookMs * 100) / 100 }));
  q.admission.done(held as number);
  expect((await q.http.app.request("/v1/lookup", { method: "POST", body: LOOKUP })).status).toBe(200);
  expect((await q.http.app.request("/v1/match", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ view: "claims", text: "vaccines", k: 1 }) })).status).toBe(200);
});

test("a client still sending its body holds no slot: with a limit of 1, stalled uploads do not block other lookups, and are served once whole", async () => {
  // Three uploads stall mid-body (a slow or hostile client); before, each held a concurrency slot until its body came.
  const stalled = [stalledBody(), stalledBody(), stalledBody()];
  const pending = stalled.map((s) => q.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: s.body, duplex: "half" } as RequestInit));
  await Bun.sleep(5);
  expect(q.admission.snapshot().inFlight).toBe(0);
  for (let i = 0; i < 5; i++) {
    const res = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: LOOKUP });
    expect(res.status).toBe(200);
  }
  for (const s of stalled) s.finish();
  for (const p of pending) expect((await p).status).toBe(200);
  expect(q.admission.snapshot().inFlight).toBe(0);
});

test("the shed request is in the anomaly buffer; the route validates its query and needs the admin token", async () => {
  const auth = { authorization: "Bearer t0k" };
  expect((await q.http.app.request("/admin/anomalies")).status).toBe(401);
  const res = await q.http.app.request("/admin/anomalies?kind=shed&limit=5", { headers: auth });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { size: number; anomalies: { kind: string; subject: string; reason: string; count: number }[] };
  expect(body.anomalies.some((a) => a.kind === "shed" && a.subject === "/v1/lookup" && a.reason === "concurrency_limit")).toBe(true);
  for (const [query, path] of [
    ["kind=nope", "(query).kind"],
    ["limit=0", "(query).limit"],
    ["limit=1e2", "(query).limit"],
    ["limit=0x10", "(query).limit"],
    ["limit=%205", "(query).limit"],
    ["limit=", "(query).limit"],
    ["limit=1&limit=5", "(query).limit"],
    ["kind=shed&kind=breaker", "(query).kind"],
    ["since=yesterday", "(query).since"],
    ["since=-1", "(query).since"],
    ["since=1969-01-01", "(query).since"],
    ["color=red", "(query).color"],
  ] as const) {
    const bad = await q.http.app.request(`/admin/anomalies?${query}`, { headers: auth });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { path: string } }).error.path).toBe(path);
  }
  const future = await q.http.app.request(`/admin/anomalies?since=${Date.now() + 60_000}`, { headers: auth });
  expect(((await future.json()) as { anomalies: unknown[] }).anomalies).toEqual([]);
});

test("x-quiver-timeout-ms is validated and named in the 400", async () => {
  for (const value of ["0", "abc", "-5", "60001", "", "0x10", "1e3", "Infinity", "5ms"]) {
    const res = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "x-quiver-timeout-ms": value }, body: LOOKUP });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { path: string } }).error.path).toBe("(headers).x-quiver-timeout-ms");
  }
  for (const value of ["2.5", " 40 "]) expect((await q.http.app.request("/v1/lookup", { method: "POST", headers: { "x-quiver-timeout-ms": value }, body: LOOKUP })).status).toBe(200);
  const ok = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "x-quiver-timeout-ms": "250" }, body: LOOKUP });
  expect(ok.status).toBe(200);
  expect(ok.headers.get("x-quiver-degraded")).toBeNull();
  expect(((await ok.json()) as { degraded?: unknown }).degraded).toBeUndefined();
});

test("/readyz carries the health score and its factors; /metrics exports quiver_health_score", async () => {
  const ready = (await (await q.http.app.request("/readyz")).json()) as { ready: boolean; health: { score: number; factors: Record<string, number>; admission: { limit: number } } };
  expect(ready.ready).toBe(true);
  expect(ready.health.score).toBeGreaterThanOrEqual(0);
  expect(ready.health.score).toBeLessThanOrEqual(100);
  expect(Object.keys(ready.health.factors).sort()).toEqual(["active", "cpu", "errors", "latency", "memory", "queue"]);
  expect(ready.health.admission.limit).toBe(1);
  const metrics = await (await q.http.app.request("/metrics")).text();
  expect(metrics).toMatch(/quiver_health_score \d+/);
  // The young-GC pacer is wired (runtime/young-gc-pacer.ts); this small heap is left to the runtime's own schedule.
  expect(metrics).toMatch(/quiver_young_gc_paced_total 0\n/);
  // The standing queue's wait starts at its 1.25 ms floor (learnt longer for clients that resend at once: standing-wait.ts).
  expect(metrics).toMatch(/quiver_admission_queue_standing_wait_seconds 0\.00125\n/);
  expect(metrics).toMatch(/quiver_admission_queue_standing 0\n/);
});
