import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";
import { type RedisProcess, type ReplicationGroup, startRedis, startReplicationGroup } from "./support/redis-process.ts";

/**
 * The server end to end on Redis shards: `--topology` with one Sentinel-watched
 * shard (primary + replica) and one direct shard, lookups and pushes through
 * HTTP, then a topology reload that adds a shard and migrates keys while the
 * server keeps answering.
 */

const json = { "content-type": "application/json" };
/** Lookups ask for a generous budget: these tests are about where keys live, on a shared, loaded machine. */
const lookupHeaders = { ...json, "x-quiver-timeout-ms": "5000" };
const dir = mkdtempSync(join(tmpdir(), "quiver-redis-serving-"));
const topologyPath = join(dir, "topology.yaml");
let group: ReplicationGroup;
let direct: RedisProcess;
let extra: RedisProcess;
let server: QuiverProcess;

const topology = (withExtra: boolean) =>
  [
    "shards:",
    "  - name: alpha",
    `    masterName: ${group.masterName}`,
    `    sentinels: [${group.sentinels.map((s) => s.address).join(", ")}]`,
    "  - name: beta",
    `    primary: ${direct.address}`,
    ...(withExtra ? ["  - name: gamma", `    primary: ${extra.address}`] : []),
    "",
  ].join("\n");

beforeAll(async () => {
  [group, direct, extra] = await Promise.all([startReplicationGroup({ replicas: 1, sentinels: 1, masterName: "alpha" }), startRedis(), startRedis()]);
  writeFileSync(topologyPath, topology(false));
  // A move waits one placement check (other servers stop writing through the old ring) before keys move: 0.6 s here, not 5.5.
  server = await startQuiver(["--topology", topologyPath, "--demo-entities", "3000", "--placement-check-interval", "100ms"]);
});

afterAll(async () => {
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await Promise.all([group?.stop(), direct?.stop(), extra?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const lookup = async (driverIds: number[]) => {
  const res = await fetch(`${server.url}/v1/lookup`, {
    method: "POST",
    headers: lookupHeaders,
    body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"], entities: { driver_id: driverIds }, fillDefaults: false }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] };
};

describe("serving from Redis shards", () => {
  test("demo data is loaded into the shards and served with statuses", async () => {
    const body = await lookup([1001, 2500, 99]);
    expect(body.rows.map((r) => r.statuses)).toEqual([["PRESENT", "PRESENT"], ["PRESENT", "PRESENT"], ["NOT_FOUND", "NOT_FOUND"]]);
    expect(body.rows[0]!.values[1]).toBe("Porto");
  });

  test("an answer larger than Bun's cork buffer, written once the shards have answered, arrives whole (chunked; runtime/late-body.ts)", async () => {
    const ids = Array.from({ length: 300 }, (_, i) => 1001 + i);
    const res = await fetch(`${server.url}/v1/lookup`, {
      method: "POST",
      headers: lookupHeaders,
      body: JSON.stringify({ featureService: "driver_ranking", entities: { driver_id: ids } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("transfer-encoding")).toBe("chunked");
    const text = await res.text();
    expect(text.length).toBeGreaterThan(16 * 1024);
    const big = JSON.parse(text) as { featureNames: string[]; rows: { values: unknown[] }[] };
    expect(big.rows.length).toBe(300);
    // Row by row the same as small answers, which leave with a Content-Length.
    for (const i of [0, 149, 299]) {
      const one = await fetch(`${server.url}/v1/lookup`, {
        method: "POST",
        headers: lookupHeaders,
        body: JSON.stringify({ featureService: "driver_ranking", entities: { driver_id: [ids[i]] } }),
      });
      expect(one.headers.get("transfer-encoding")).toBeNull();
      const small = (await one.json()) as { featureNames: string[]; rows: unknown[] };
      expect(small.featureNames).toEqual(big.featureNames);
      expect(small.rows[0]).toEqual(big.rows[i]);
    }
    // Feast's route takes the same path. Other drivers: those above are in the L1 cache now, and
    // an answer from the cache is written synchronously, inside its request's callback.
    const others = ids.map((id) => id + 1000);
    const feast = await fetch(`${server.url}/get-online-features`, {
      method: "POST",
      headers: lookupHeaders,
      body: JSON.stringify({ feature_service: "driver_ranking", entities: { driver_id: others } }),
    });
    expect(feast.status).toBe(200);
    expect(feast.headers.get("transfer-encoding")).toBe("chunked");
    const columns = (await feast.json()) as { metadata: { feature_names: string[] }; results: { values: unknown[]; statuses: string[] }[] };
    expect(columns.metadata.feature_names.length).toBe(1 + big.featureNames.length);
    expect(columns.results[0]!.values).toEqual(others);
    for (const column of columns.results.slice(1)) expect(column.statuses.every((s) => s === "PRESENT")).toBe(true);
  });

  test("pushes are last-write-wins in Redis", async () => {
    const push = (ts: number, rate: number) =>
      fetch(`${server.url}/v1/push`, { method: "POST", headers: json, body: JSON.stringify({ featureView: "driver_hourly_stats", rows: [{ driver_id: 1001, event_timestamp: ts, conv_rate: rate, city: "Faro" }] }) });
    const now = Date.now();
    expect(await (await push(now, 0.42)).json()).toEqual({ written: 1, ignored: 0 });
    expect(await (await push(now - 1000, 0.1)).json()).toEqual({ written: 0, ignored: 1 });
    expect((await lookup([1001])).rows[0]!.values).toEqual([0.42, "Faro"]);
  });

  test("readiness shows each shard's role map; metrics show per-member figures", async () => {
    const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { ready: boolean; store: { detail: { nodes: { id: string; detail: { roles: Record<string, string> } }[] } } };
    expect(ready.ready).toBe(true);
    const alpha = ready.store.detail.nodes.find((n) => n.id === "alpha")!;
    expect(Object.values(alpha.detail.roles).sort()).toEqual(["primary", "replica"]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/quiver_shard_member_up\{shard="alpha",address="[^"]+",role="replica"\} 1/);
    expect(metrics).toContain('quiver_shard_member_replication_lag_bytes{shard="alpha"');
  });

  test("adding a shard by topology reload migrates keys while every key stays readable", async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => 1001 + i);
    writeFileSync(topologyPath, topology(true));
    const reload = await fetch(`${server.url}/admin/topology/reload`, { method: "POST" });
    expect(reload.status).toBe(200);
    expect(await reload.json()).toEqual({ migrating: true, shards: ["alpha", "beta", "gamma"] });
    // Reads during the move never miss. Bounded by time, not rounds: a fast machine runs many rounds before the move ends.
    let state = "running";
    const until = Date.now() + 60_000;
    while (state !== "done" && Date.now() < until) {
      const body = await lookup(ids);
      expect(body.rows.filter((r) => r.statuses[0] !== "PRESENT")).toHaveLength(0);
      const progress = (await (await fetch(`${server.url}/admin/topology/migration`)).json()) as { state: string; movedFraction: number };
      state = progress.state;
      if (state === "failed") throw new Error(`migration failed: ${JSON.stringify(progress)}`);
    }
    expect(state).toBe("done");
    const progress = (await (await fetch(`${server.url}/admin/topology/migration`)).json()) as { movedFraction: number };
    // One of three equal shards: about a third of the keys move (±25%).
    expect(progress.movedFraction).toBeGreaterThan((1 / 3) * 0.75);
    expect(progress.movedFraction).toBeLessThan((1 / 3) * 1.25);
    const after = await lookup(ids);
    expect(after.rows.filter((r) => r.statuses[0] !== "PRESENT")).toHaveLength(0);
    expect(after.rows[0]!.values).toEqual([0.42, "Faro"]);
  });

  test("a bad topology file is a 400 naming the path, and the old topology keeps serving", async () => {
    writeFileSync(topologyPath, "shards:\n  - name: alpha\n    primary: nowhere\n");
    const res = await fetch(`${server.url}/admin/topology/reload`, { method: "POST" });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_topology");
    expect(body.error.message).toContain("shards[0].primary");
    expect((await lookup([1001])).rows[0]!.statuses).toEqual(["PRESENT", "PRESENT"]);
  });
});
