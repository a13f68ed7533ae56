import { describe, expect, test } from "bun:test";
import { buildQuiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { sampleEntities, sampleViews } from "../src/serving/index.ts";
import { connect, unaryCall } from "./support/grpc-client.ts";
import { startQuiver } from "./support/quiver-process.ts";

/**
 * The start-up warm-up (src/api/http/warmup.ts, src/api/grpc/warmup.ts):
 * lookups the server sends its own edges before clients come. What it
 * measurably buys (a cold server's first second) is in bench/HISTORY.md
 * ("A just-started server warms up before it listens"); here, that every lookup and call is answered, that nothing of it is
 * left in metrics or admission, that gRPC health says NOT_SERVING meanwhile,
 * and that it asks for stored entities when there are some.
 */
describe("start-up warm-up", () => {
  const count = (metrics: string, series: string) => Number(new RegExp(`^${series.replace(/[{}()[\]./]/g, "\\$&")} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0);

  test("every HTTP lookup and gRPC call answered on sampled stored entities; metrics, admission and the health interval show none of it; gRPC health NOT_SERVING meanwhile", async () => {
    // servesSockets: the CPU-overload signal is on, as in main.ts: the warm-up must not read as overload.
    const q = await buildQuiver(loadConfig(["--demo-entities", "2000"], {}), { servesSockets: true });
    const grpc = q.grpc;
    if (grpc === undefined) throw new Error("the gRPC edge was not built");
    const port = await grpc.listen("127.0.0.1", 0);
    const clients = connect(`127.0.0.1:${port}`);
    try {
      const warming = q.warmUp(3000, ["json", "batch", "msgpack", "feast", "grpc"], true);
      expect((await unaryCall(clients.health, "Check", { service: "" })).response).toEqual({ status: "NOT_SERVING" });
      const report = await warming;
      expect(report.http).toMatchObject({ lookups: 3000, byStatus: { "200": 3000 } });
      expect(report.grpc).toMatchObject({ calls: 600, byCode: { "0": 600 } });
      expect(report.sampledEntities).toBeGreaterThan(0);
      expect((await unaryCall(clients.health, "Check", { service: "" })).response).toEqual({ status: "SERVING" });
      const snapshot = q.admission.snapshot();
      expect(snapshot.inFlight).toBe(0);
      expect(snapshot.admitted).toBe(0); // /readyz shows clients' requests, not the warm-up's
      expect(snapshot.shed).toBe(0);
      expect(q.admission.admittedCount).toBeGreaterThanOrEqual(3600); // the pacer's running count of work keeps them
      expect(snapshot.cpuOverloaded).toBe(false);
      expect(q.admission.takeInterval().completed).toBe(0);
      let metrics = await q.metrics.render();
      expect(count(metrics, 'quiver_http_requests_total{route="/v1/lookup",status="200"}')).toBe(0);
      expect(count(metrics, 'quiver_http_request_duration_seconds_count{route="/v1/lookup"}')).toBe(0);
      expect(metrics).not.toMatch(/^quiver_grpc_requests_total\{[^}]*\} [1-9]/m);
      // Counting goes on from zero for real requests.
      const res = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }) });
      expect(res.status).toBe(200);
      metrics = await q.metrics.render();
      expect(count(metrics, 'quiver_http_requests_total{route="/v1/lookup",status="200"}')).toBe(1);
      expect(q.admission.snapshot().admitted).toBe(1);
    } finally {
      clients.close();
      await grpc.drain(1000);
      await q.close();
    }
  }, 30_000);

  test("the entities asked for are stored ones, read back from their keys; an empty store gets made-up keys and still warms", async () => {
    const q = await buildQuiver(loadConfig(["--demo-entities", "500"], {}), { servesSockets: true });
    try {
      const drivers = await sampleEntities(q.store, q.registry.current.views.get("driver_hourly_stats")!, 20, performance.now() + 5_000);
      expect(drivers.length).toBe(20);
      for (const d of drivers) expect(d.get("driver_id")).toBeWithin(1001, 1501);
      const pairs = await sampleEntities(q.store, q.registry.current.views.get("driver_customer_affinity")!, 5, performance.now() + 5_000);
      expect(pairs.length).toBe(5);
      for (const p of pairs) expect([typeof p.get("driver_id"), typeof p.get("customer_id")]).toEqual(["number", "string"]);
    } finally {
      await q.close();
    }
    const empty = await buildQuiver(loadConfig(["--demo-entities", "0"], {}), { servesSockets: true });
    try {
      const samples = await sampleViews(empty.store, empty.registry.current, 8, performance.now() + 5_000);
      expect(samples.length).toBeGreaterThan(0);
      expect(samples.every((s) => !s.stored && s.entities.length > 0)).toBe(true);
      const report = await empty.warmUp(500, ["json"], false);
      expect(report).toMatchObject({ http: { lookups: 500, byStatus: { "200": 500 } }, grpc: undefined, sampledEntities: 0 });
      expect((await empty.warmUp(0, ["json"], false)).http.lookups).toBe(0);
    } finally {
      await empty.close();
    }
  }, 30_000);

  test("each shape asked for is sent, and only those: the HTTP shapes by route and media type", async () => {
    const q = await buildQuiver(loadConfig(["--demo-entities", "200"], {}), { servesSockets: true });
    const seen = new Map<string, number>();
    for (const path of ["/v1/lookup", "/get-online-features"]) {
      const serve = q.http.nativeRoutes[path]!.POST!;
      q.http.nativeRoutes[path]!.POST = (req) => {
        const kind = `${path} ${req.headers.get("content-type")} ${req.headers.get("accept") ?? "-"}`;
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
        return serve(req);
      };
    }
    try {
      await q.warmUp(400, ["json"], false);
      expect([...seen.keys()]).toEqual(["/v1/lookup application/json -"]);
      seen.clear();
      await q.warmUp(400, ["msgpack", "feast"], false);
      expect([...seen.keys()].sort()).toEqual(["/get-online-features application/json -", "/v1/lookup application/json application/msgpack", "/v1/lookup application/msgpack application/msgpack"]);
    } finally {
      await q.close();
    }
  }, 30_000);

  test("the server warms up the shapes asked for, gRPC too, before HTTP listens and says so; its /metrics counts none of it", async () => {
    const server = await startQuiver(["--demo-entities", "1000", "--warmup-lookups", "2000", "--warmup-shapes", "json,feast,grpc"]);
    try {
      const out = server.output();
      expect(out).toMatch(/quiver warmed up in \d+ ms: 2000 HTTP lookups in \d+ ms \(2000 × ok\), 400 gRPC calls in \d+ ms \(400 × ok\); \d+ stored entities sampled/);
      expect(out.indexOf("warmed up")).toBeLessThan(out.indexOf("listening on http"));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(count(metrics, 'quiver_http_requests_total{route="/v1/lookup",status="200"}')).toBe(0);
      expect(metrics).not.toMatch(/^quiver_grpc_requests_total\{[^}]*\} [1-9]/m);
    } finally {
      await server.stop();
    }
  }, 30_000);
});
