import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { driverStatuses } from "./support/driver-statuses.ts";
import type { QuiverError } from "../src/errors/index.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";
import { startRefused } from "./support/start-refused.ts";
import { connect, unaryCall } from "./support/grpc-client.ts";

/**
 * The placement record on real redis-servers: a restart on a topology whose
 * ring places keys elsewhere (a shard added to the file, --vnodes changed) is
 * refused instead of answering a share of every lookup NOT_FOUND; with
 * --migrate-on-start the server moves the keys while serving them all.
 */
const dir = mkdtempSync(join(tmpdir(), "quiver-placement-"));
const one = join(dir, "one.yaml");
const two = join(dir, "two.yaml");
const DRIVERS = 300;
let servers: RedisProcess[] = [];

beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis()]);
  writeFileSync(one, `shards:\n  - name: s1\n    primary: ${servers[0]!.address}\n`);
  writeFileSync(two, `shards:\n  - name: s1\n    primary: ${servers[0]!.address}\n  - name: s2\n    primary: ${servers[1]!.address}\n`);
}, 30_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

const start = (topology: string, more: string[] = []): Promise<Quiver> =>
  buildQuiver(loadConfig(["--topology", topology, "--demo-entities", String(DRIVERS), "--grpc-port", "-1", "--cache-l1", "off", "--placement-check-interval", "100ms", ...more], {}));

const refusal = (topology: string, more: string[] = []): Promise<QuiverError> => startRefused(() => start(topology, more));

const statuses = (q: Quiver): Promise<Record<string, number>> => driverStatuses(q, DRIVERS);

test("a start on a ring that places keys elsewhere is refused; --migrate-on-start moves them while every lookup is answered", async () => {
  const first = await start(one);
  expect(await statuses(first)).toEqual({ PRESENT: DRIVERS });
  await first.close();

  // A shard added to the file and a restart instead of a reload: about half the keys would be looked for on s2.
  const refused = await refusal(two);
  expect(refused.code).toBe("placement_mismatch");
  expect(refused.message).toContain("the shards hold keys placed by [160 vnodes: s1:1], but this topology places them by [160 vnodes: s1:1,s2:1]");
  expect(refused.message).toContain("--migrate-on-start on");

  const moving = await start(two, ["--migrate-on-start", "on"]);
  try {
    // Answered whole while (and after) the keys move: a key not yet moved is read from its old shard.
    expect(await statuses(moving)).toEqual({ PRESENT: DRIVERS });
    let progress = { state: "", scannedKeys: 0, totalKeys: -1 };
    await eventually("the migration done", async () => {
      progress = (await (await moving.http.app.request("/admin/topology/migration")).json()) as typeof progress;
      return progress.state === "done";
    });
    // The records beside the rows (placement, layouts) are not counted as keys to move.
    expect(progress.scannedKeys).toBe(progress.totalKeys);
    expect(await statuses(moving)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await moving.close();
  }

  const after = await start(two);
  expect(await statuses(after)).toEqual({ PRESENT: DRIVERS });
  await after.close();
  // Now the old topology, or other virtual nodes, would look in the wrong places.
  expect((await refusal(one)).message).toContain("the shards hold keys placed by [160 vnodes: s1:1,s2:1], but this topology places them by [160 vnodes: s1:1]");
  expect((await refusal(two, ["--vnodes", "100"])).message).toContain("but this topology places them by [100 vnodes: s1:1,s2:1]");
}, 60_000);

test("a move whose checkpoint cannot be written is refused before anything changes, at start and on reload", async () => {
  const nowhere = ["--migration-checkpoint", join(dir, "missing-dir", "migration.json")];
  // The shards hold ring two (the test above): a move back to one, at start.
  const atStart = await refusal(one, ["--migrate-on-start", "on", ...nowhere]);
  expect(atStart.code).toBe("checkpoint_unwritable");
  expect(atStart.message).toContain("nothing was changed: set --migration-checkpoint");

  // And on reload: the file switched to one shard under a running server.
  const live = join(dir, "live.yaml");
  writeFileSync(live, await Bun.file(two).text());
  const q = await start(live, nowhere);
  try {
    writeFileSync(live, await Bun.file(one).text());
    const res = await q.http.app.request("/admin/topology/reload", { method: "POST" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("checkpoint_unwritable");
    expect((await q.http.app.request("/admin/topology/migration")).status).toBe(404);
    expect(await statuses(q)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await q.close();
  }
  const after = await start(two);
  expect(await statuses(after)).toEqual({ PRESENT: DRIVERS });
  await after.close();
}, 60_000);

test("a running server whose keys another server moves turns unready until it is reloaded on the new topology", async () => {
  // The shards hold ring two (the tests above). Two servers on it; A moves the keys back to one shard.
  const liveA = join(dir, "a.yaml");
  const liveB = join(dir, "b.yaml");
  for (const f of [liveA, liveB]) writeFileSync(f, await Bun.file(two).text());
  const a = await start(liveA);
  // B with its gRPC edge listening: its health check follows the same rule as /readyz.
  const b = await start(liveB, ["--grpc-port", "0"]);
  const grpcPort = await b.grpc!.listen("127.0.0.1", 0);
  const clients = connect(`127.0.0.1:${grpcPort}`);
  const health = async () => (await unaryCall<{ status: string }>(clients.health, "Check", { service: "" })).response?.status;
  const readyz = async (q: Quiver) => {
    const res = await q.http.app.request("/readyz");
    return { status: res.status, unready: ((await res.json()) as { unready?: string }).unready };
  };
  try {
    expect((await readyz(b)).status).toBe(200);
    writeFileSync(liveA, await Bun.file(one).text());
    expect((await a.http.app.request("/admin/topology/reload", { method: "POST" })).status).toBe(200);
    await eventually("B unready", async () => (await readyz(b)).status === 503);
    // Either while the keys move or once they are placed by one shard, whichever B saw last.
    expect((await readyz(b)).unready).toMatch(/reload .*topology/);
    expect(await (await b.http.app.request("/metrics")).text()).toContain("\nquiver_placement_mismatch 1\n");
    expect(await health()).toBe("NOT_SERVING");
    // And it writes nothing where readers of the keys' ring would never look: a push is refused, retryably.
    const push = await b.http.app.request("/v1/push", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ featureView: "driver_hourly_stats", rows: [{ driver_id: 1001, event_timestamp: new Date().toISOString(), conv_rate: 0.999 }] }),
    });
    expect(push.status).toBe(503);
    expect(push.headers.get("retry-after")).not.toBeNull();
    expect(((await push.json()) as { error: { code: string } }).error.code).toBe("placement_stale");
    await eventually("A's move done", async () => ((await (await a.http.app.request("/admin/topology/migration")).json()) as { state: string }).state === "done");
    expect(await readyz(a)).toEqual({ status: 200, unready: undefined });
    expect(await statuses(a)).toEqual({ PRESENT: DRIVERS });
    const conv = await a.http.app.request("/v1/lookup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }),
    });
    expect(((await conv.json()) as { rows: { values: number[] }[] }).rows[0]!.values[0]).not.toBe(0.999);

    // B reloaded on the same topology joins the (finished) move and is ready again, every key found.
    writeFileSync(liveB, await Bun.file(one).text());
    expect((await b.http.app.request("/admin/topology/reload", { method: "POST" })).status).toBe(200);
    await eventually("B ready again", async () => (await readyz(b)).status === 200);
    expect(await health()).toBe("SERVING");
    // s2, emptied and retired by the move (B's too, once done), keeps no record that would refuse it in a later topology.
    const s2 = new Redis({ host: servers[1]!.host, port: servers[1]!.port });
    try {
      await eventually("s2's record removed", async () => (await s2.get("quiver:placement")) === null);
    } finally {
      s2.disconnect();
    }
    expect(await (await b.http.app.request("/metrics")).text()).toContain("\nquiver_placement_mismatch 0\n");
    expect(await statuses(b)).toEqual({ PRESENT: DRIVERS });
  } finally {
    clients.close();
    await b.grpc!.drain(0);
    await Promise.all([a.close(), b.close()]);
  }
}, 60_000);

test("a move waits until every shard holds its record: no key moves while one shard cannot take it", async () => {
  // The shards hold ring one (the test above moved the keys back). s1, where the keys are, refuses writes for a while
  // (NOREPLICAS), as a primary cut off from the reloading server is: its record stayed the old one, and a server
  // checking it went on writing through the old ring while the keys were copied away (acknowledged writes lost).
  const live = join(dir, "wait.yaml");
  // A short failover window: a write s1 refuses fails in well under a second instead of being retried for 10 s.
  const quick = (text: string) => text.replace(/primary: (\S+)/g, "primary: $1\n    failoverWindowMs: 200");
  writeFileSync(live, quick(await Bun.file(one).text()));
  const a = await start(live);
  const s1 = new Redis({ host: servers[0]!.host, port: servers[0]!.port });
  const s2 = new Redis({ host: servers[1]!.host, port: servers[1]!.port });
  const progress = async () => (await (await a.http.app.request("/admin/topology/migration")).json()) as { state: string; movedKeys: number };
  try {
    await s1.config("SET", "min-replicas-to-write", "1");
    writeFileSync(live, quick(await Bun.file(two).text()));
    expect((await a.http.app.request("/admin/topology/reload", { method: "POST" })).status).toBe(200);
    await Bun.sleep(2500);
    // Nothing copied to s2 yet (the move went on after ~0.2 s and copied there).
    expect((await s2.keys("driver_hourly_stats*")).length).toBe(0);
    await s1.config("SET", "min-replicas-to-write", "0");
    await eventually("the move done once s1 took the record", async () => (await progress()).state === "done", 60_000);
    expect((await progress()).movedKeys).toBeGreaterThan(0);
    expect(await statuses(a)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await s1.config("SET", "min-replicas-to-write", "0").catch(() => undefined);
    s1.disconnect();
    s2.disconnect();
    await a.close();
  }
}, 90_000);
