import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";
import { runOnce } from "../loadtest/run.ts";
import type { RunOptions } from "../loadtest/run.ts";
import { SCENARIOS } from "../loadtest/scenarios/index.ts";

/**
 * The shared fixtures (also loaded by the k6 scripts) and every generator scenario
 * against a real `bun src/main.ts`: what the load tools send is what the server
 * accepts, so a load test never measures a stream of 400s.
 */

let server: QuiverProcess;
/** The server has an admin token: what the load tools write is accepted only when they send it. */
const TOKEN = "load-token";

beforeAll(async () => {
  server = await startQuiver(["--demo-entities", "1000", "--admin-token", TOKEN]);
}, 40_000);

afterAll(async () => {
  await server?.stop();
});

async function postFixture(path: string, fixture: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = await Bun.file(`${import.meta.dir}/fixtures/${fixture}`).text();
  const r = await fetch(server.url + path, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` }, body });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe("shared fixtures against the server", () => {
  test("lookup-single.json: one row of 10 present features", async () => {
    const r = await postFixture("/v1/lookup", "lookup-single.json");
    expect(r.status).toBe(200);
    const rows = r.body["rows"] as { statuses: string[]; values: unknown[] }[];
    expect(rows.length).toBe(1);
    expect(rows[0]?.values.length).toBe(10);
    expect(rows[0]?.statuses.every((s) => s === "PRESENT" || s === "NULL_VALUE")).toBe(true);
  });

  test("lookup-batch.json: 100 rows", async () => {
    const r = await postFixture("/v1/lookup", "lookup-batch.json");
    expect(r.status).toBe(200);
    expect((r.body["rows"] as unknown[]).length).toBe(100);
  });

  test("feast-get-online-features.json: join key column first, then 10 feature columns", async () => {
    const r = await postFixture("/get-online-features", "feast-get-online-features.json");
    expect(r.status).toBe(200);
    const names = (r.body["metadata"] as { feature_names: string[] }).feature_names;
    expect(names[0]).toBe("driver_id");
    expect((r.body["results"] as unknown[]).length).toBe(11);
  });

  test("push.json: both rows written", async () => {
    const r = await postFixture("/v1/push", "push.json");
    expect(r.status).toBe(200);
    expect((r.body["written"] as number) + (r.body["ignored"] as number)).toBe(2);
  });
});

describe("every generator scenario against the server", () => {
  const base = (scenario: string): RunOptions => ({
    scenario,
    // gRPC scenarios drive the server's gRPC port.
    target: new URL(scenario.startsWith("grpc-") ? `http://${server.grpcAddress}` : server.url),
    mode: "open",
    rate: 200,
    connections: 4,
    durationMs: 300,
    warmupMs: 0,
    timeoutMs: 2000,
    gcPaceMs: 0,
    keys: "zipf:1.1",
    entities: 1000,
    seed: "1",
    batch: undefined,
    writeRatio: 0.5,
    token: TOKEN,
    view: "driver_hourly_stats",
    features: undefined,
    path: "/healthz",
    maxRequests: 1000,
    label: undefined,
  });

  for (const name of SCENARIOS.keys()) {
    test(`${name}: every request answered 2xx`, async () => {
      const r = await runOnce(base(name));
      expect(r.requests.sent).toBe(60);
      expect(r.errorsByKind).toEqual({});
      expect(r.requests.ok).toBe(60);
    });
  }

  test("mixed reports reads and writes apart", async () => {
    const r = await runOnce(base("mixed"));
    expect(Object.keys(r.byTag).sort()).toEqual(["lookup", "push"]);
  });

  test("push without --token: every write refused with 401, so the token really is what gets the others in", async () => {
    const r = await runOnce({ ...base("push"), token: undefined });
    expect(r.requests.sent).toBe(60);
    expect(r.statusCounts).toEqual({ "401": 60 });
  });
});
