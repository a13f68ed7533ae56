import { describe, expect, test } from "bun:test";
import { sampleEntities } from "../src/api/http/index.ts";
import { buildQuiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { startQuiver } from "./support/quiver-process.ts";

/**
 * The start-up warm-up (src/api/http/warmup.ts): lookups the server sends its
 * own hot routes before it listens. What it measurably buys (a cold server's
 * first second) is in README's Performance section; here, that it answers
 * every lookup, leaves nothing behind in metrics or admission, and asks for
 * stored entities when there are some.
 */
describe("start-up warm-up", () => {
  const lookupCount = (metrics: string) => Number(/^quiver_http_requests_total\{route="\/v1\/lookup",status="200"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);

  test("every lookup answered 200 on sampled stored entities; metrics, admission and the health interval show none of it", async () => {
    // servesSockets: the CPU-overload signal is on, as in main.ts: the warm-up must not read as overload.
    const q = await buildQuiver(loadConfig(["--demo-entities", "2000"], {}), { servesSockets: true });
    try {
      const report = await q.warmUp(3000);
      expect(report.lookups).toBe(3000);
      expect(report.byStatus).toEqual({ "200": 3000 });
      expect(report.sampledEntities).toBeGreaterThan(0);
      const snapshot = q.admission.snapshot();
      expect(snapshot.inFlight).toBe(0);
      expect(snapshot.cpuOverloaded).toBe(false);
      expect(q.admission.takeInterval().completed).toBe(0);
      let metrics = await q.metrics.render();
      expect(lookupCount(metrics)).toBe(0);
      expect(metrics).not.toMatch(/^quiver_http_request_duration_seconds_count\{route="\/v1\/lookup"\} [1-9]/m);
      // Counting goes on from zero for real requests.
      const res = await q.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }) });
      expect(res.status).toBe(200);
      metrics = await q.metrics.render();
      expect(lookupCount(metrics)).toBe(1);
    } finally {
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
      const report = await empty.warmUp(500);
      expect(report).toMatchObject({ lookups: 500, byStatus: { "200": 500 }, sampledEntities: 0 });
      expect(await empty.warmUp(0)).toMatchObject({ lookups: 0 });
    } finally {
      await empty.close();
    }
  }, 30_000);

  test("the server warms up before it listens and says so; its /metrics counts no warm-up lookup", async () => {
    const server = await startQuiver(["--demo-entities", "1000", "--grpc-port", "-1", "--warmup-lookups", "2000"]);
    try {
      const out = server.output();
      expect(out).toMatch(/quiver warmed up: 2000 lookups in \d+ ms \(2000 × 200; \d+ stored entities sampled\)/);
      expect(out.indexOf("warmed up")).toBeLessThan(out.indexOf("listening on"));
      expect(lookupCount(await (await fetch(`${server.url}/metrics`)).text())).toBe(0);
    } finally {
      await server.stop();
    }
  }, 30_000);
});
