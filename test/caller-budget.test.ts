import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { type DelayProxy, startDelayProxy } from "./support/delay-proxy.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A client's own budget against a healthy shard, on a real redis-server behind
 * the delay proxy (every chunk held a fixed time each way, so the round trip
 * is at least twice that, however fast the machine). A timeout the caller's
 * deadline caused is not the shard's: before, five lookups with
 * `x-quiver-timeout-ms: 5` opened the healthy shard's read breaker, and every
 * other client got defaults for 30 s.
 */

const dir = mkdtempSync(join(tmpdir(), "quiver-caller-budget-"));
let server: RedisProcess;
let proxy: DelayProxy;
let q: Quiver;

beforeAll(async () => {
  server = await startRedis();
  proxy = await startDelayProxy({ targetPort: server.port, delayMs: 0 });
  const topologyPath = join(dir, "topology.yaml");
  writeFileSync(topologyPath, ["shards:", "  - name: gamma", `    primary: 127.0.0.1:${proxy.port}`, "    writeAcks: 0", ""].join("\n"));
  q = await buildQuiver(loadConfig(["--topology", topologyPath, "--demo-entities", "50", "--cache-l1", "off", "--grpc-port", "-1"], {}));
}, 60_000);

afterAll(async () => {
  await q?.close();
  await proxy?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function lookup(budgetMs: number): Promise<{ statuses: string[]; degraded: string | null }> {
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "x-quiver-timeout-ms": String(budgetMs) },
    body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { rows: { statuses: string[] }[] };
  return { statuses: body.rows[0]!.statuses, degraded: res.headers.get("x-quiver-degraded") };
}

const metric = async (line: RegExp): Promise<number> => {
  const m = (await (await q.http.app.request("/metrics")).text()).match(line);
  return m ? Number(m[1]) : 0;
};

describe("a client's own short budget", () => {
  test("lookups whose budget is shorter than the shard's round trip answer UNAVAILABLE for themselves and never open the shard's breaker", async () => {
    expect((await lookup(1000)).statuses).toEqual(["PRESENT"]);
    proxy.setDelay(10); // a round trip of at least 20 ms: a 5 ms budget always runs out
    try {
      for (let i = 0; i < 12; i++) expect(await lookup(5)).toEqual({ statuses: ["UNAVAILABLE"], degraded: "gamma" });
      expect(await metric(/quiver_shard_breaker_state\{shard="gamma",op="read"\} (\d+)/)).toBe(0);
      expect(await metric(/quiver_shard_failures_total\{shard="gamma",op="read",reason="storage_timeout"\} (\d+)/)).toBe(0);
      // Another client, with time enough for the round trip, is served.
      expect((await lookup(1000)).statuses).toEqual(["PRESENT"]);
    } finally {
      proxy.setDelay(0);
    }
  }, 30_000);
});
