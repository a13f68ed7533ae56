import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterDown } from "../shards/cluster.ts";
import { allProcesses, isOurRedis, readState, stopProcess } from "../shards/cluster-state.ts";
import type { ClusterStatus } from "../shards/cluster-status.ts";
import { withRedis } from "../shards/redis-probe.ts";
import { connectShards, loadTopology } from "../src/shard/index.ts";

/** The shards launcher as users run it: a CLI that leaves detached servers behind and stops exactly those. */

const root = mkdtempSync(join(tmpdir(), "quiver-launcher-"));
const runDir = join(root, "run");
const topologyPath = join(root, "local.yaml");
const cli = new URL("../shards/cli.ts", import.meta.url).pathname;

async function run(...args: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn([process.execPath, cli, ...args, "--run-dir", runDir, "--topology", topologyPath], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code: await proc.exited, out: out + err };
}

afterAll(async () => {
  await clusterDown(runDir, topologyPath); // no-op when the test already stopped it
  rmSync(root, { recursive: true, force: true });
});

test("shards:up starts detached servers and a topology, status shows roles and lag, add grows it, down stops exactly them", async () => {
  const up = await run("up", "--shards", "2", "--replicas", "1", "--sentinels", "3", "--down-after-ms", "1000", "--l2");
  expect(up.out).toContain("cluster up: 2 shard(s), 8 processes");
  expect(up.code).toBe(0);

  const state = readState(runDir)!;
  expect(state.shards.map((s) => s.nodes.length)).toEqual([2, 2]);
  expect(state.sentinels).toHaveLength(3);
  // --l2: a cache redis-server with an LRU memory bound, written into the topology's cache section.
  expect((await loadTopology(topologyPath)).cache).toEqual({ l2: `127.0.0.1:${state.l2!.port}` });
  expect(await withRedis(`127.0.0.1:${state.l2!.port}`, (r) => r.config("GET", "maxmemory-policy"))).toEqual(["maxmemory-policy", "allkeys-lru"]);
  // The CLI has exited; its servers live on.
  expect(allProcesses(state).every(isOurRedis)).toBe(true);

  const shards = await connectShards(await loadTopology(topologyPath));
  try {
    for (const m of shards.members) {
      await m.node.putMany([{ key: "launch@1/k=i1", row: { ts: 7, values: [m.id] } }]);
      expect(await m.node.getMany(["launch@1/k=i1"])).toEqual([{ ts: 7, values: [m.id] }]);
    }
    expect(shards.stats().map((s) => [s.id, s.discovery, s.members.map((m) => m.role).sort()])).toEqual([
      ["shard-1", "sentinel", ["primary", "replica"]],
      ["shard-2", "sentinel", ["primary", "replica"]],
    ]);
  } finally {
    await shards.close();
  }

  const status = await run("status", "--json");
  expect(status.code).toBe(0);
  const parsed = JSON.parse(status.out) as ClusterStatus;
  expect(parsed.nodes.map((n) => n.role).sort()).toEqual(["primary", "primary", "replica", "replica"]);
  expect(parsed.nodes.every((n) => n.running && n.lagBytes !== null && n.offset !== null)).toBe(true);
  expect(parsed.sentinels.every((s) => Object.keys(s.masters).length === 2 && !Object.values(s.masters).includes("?"))).toBe(true);
  expect((await run("status")).out).toMatch(/shard-1\s+127\.0\.0\.1:\d+\s+\d+\s+primary/);

  const added = await run("add");
  expect(added.code).toBe(0);
  expect(added.out).toContain("shard-3: primary");
  const grown = readState(runDir)!;
  expect(grown.shards.map((s) => [s.name, s.nodes.length])).toEqual([
    ["shard-1", 2],
    ["shard-2", 2],
    ["shard-3", 2],
  ]);
  expect((await loadTopology(topologyPath)).shards.map((s) => s.name)).toEqual(["shard-1", "shard-2", "shard-3"]);
  const withNew = JSON.parse((await run("status", "--json")).out) as ClusterStatus;
  expect(withNew.sentinels.every((s) => s.masters["shard-3"] === `127.0.0.1:${grown.shards[2]!.nodes[0]!.port}`)).toBe(true);

  const again = await run("up", "--shards", "1", "--replicas", "0", "--sentinels", "1");
  expect(again.code).toBe(1);
  expect(again.out).toContain("already running");

  const down = await run("down");
  expect(down.code).toBe(0);
  expect(down.out).toContain("stopped 10 process(es)");
  expect(allProcesses(grown).some(isOurRedis)).toBe(false);
  expect(existsSync(runDir)).toBe(false);
  expect(existsSync(topologyPath)).toBe(false);
}, 50_000);

test("down never signals a recorded PID that is not our redis-server", async () => {
  const other = Bun.spawn(["sleep", "30"]);
  try {
    const outcome = await stopProcess({ kind: "redis", host: "127.0.0.1", port: 1, pid: other.pid, dir: root });
    expect(outcome).toBe("not ours");
    expect(other.exitCode).toBeNull();
  } finally {
    other.kill();
    await other.exited;
  }
});

test("--help prints the usage; a mistyped flag is refused with the usage, not a stack trace", async () => {
  const help = await run("--help");
  expect([help.code, help.out]).toEqual([0, expect.stringContaining("usage: bun shards/cli.ts up [--shards 3]")]);
  const typo = await run("up", "--shard", "2");
  expect(typo.code).toBe(2);
  expect(typo.out).toContain("Unknown option '--shard'");
  expect(typo.out).toContain("usage: bun shards/cli.ts");
  expect(typo.out).not.toContain("TypeError");
});
