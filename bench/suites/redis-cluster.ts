import { existsSync, mkdirSync } from "node:fs";
import { canPin, onInterrupt } from "../lib/processes.ts";

/** A local Redis cluster the bench started with the shards launcher (issue 3), in its own run dir. */
export interface BenchCluster {
  readonly topology: string;
  /** host:port of each shard's first primary, for redis-benchmark. */
  readonly primaries: readonly string[];
  down(): Promise<void>;
}

/**
 * `bun shards/cli.ts up` pinned to the server core, so the Redis processes it
 * daemonizes inherit that affinity: Quiver and its shards share core `cpu`, the
 * load driver has the other one, as for the embedded store.
 */
export async function clusterUp(o: { root: string; dir: string; cpu: string; shards: number; replicas: number; log: (s: string) => void }): Promise<BenchCluster> {
  mkdirSync(o.dir, { recursive: true });
  const runDir = `${o.dir}/run`;
  const topology = `${o.dir}/topology.yaml`;
  const cli = [process.execPath, "shards/cli.ts"];
  const where = ["--run-dir", runDir, "--topology", topology];
  const down = async () => {
    const p = Bun.spawn([...cli, "down", ...where], { cwd: o.root, stdout: "ignore", stderr: "ignore" });
    await p.exited;
  };
  // Leftovers of an interrupted run in this run dir (processes an earlier bench started).
  if (existsSync(`${runDir}/state.json`)) await down();
  const forget = onInterrupt(down);
  const argv = [...cli, "up", "--shards", String(o.shards), "--replicas", String(o.replicas), "--sentinels", "1", "--no-aof", ...where];
  const up = Bun.spawn(canPin() ? ["taskset", "-c", o.cpu, ...argv] : argv, { cwd: o.root, stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(up.stdout).text(), new Response(up.stderr).text()]);
  await up.exited;
  if (up.exitCode !== 0 || !existsSync(topology)) {
    forget();
    await down();
    throw new Error(`shards:up failed (exit ${up.exitCode}): ${(out + err).slice(-800)}`);
  }
  const state = (await Bun.file(`${runDir}/state.json`).json()) as { shards: { nodes: { host: string; port: number }[] }[] };
  const primaries = state.shards.map((s) => `${s.nodes[0]?.host}:${s.nodes[0]?.port}`);
  o.log(`  redis cluster up: ${primaries.length} shards (${primaries.join(", ")})`);
  return {
    topology,
    primaries,
    down: async () => {
      forget();
      await down();
    },
  };
}

/** `redis-benchmark -t get` against one primary, pinned to the driver core: the reference rate. */
export async function redisBenchmarkGet(o: { address: string; cpu: string; requests: number; clients: number }): Promise<number | null> {
  if (Bun.which("redis-benchmark") === null) return null;
  const [host, port] = o.address.split(":");
  const argv = ["redis-benchmark", "-h", host ?? "127.0.0.1", "-p", port ?? "6379", "-t", "get", "-n", String(o.requests), "-c", String(o.clients), "--csv"];
  const p = Bun.spawn(canPin() ? ["taskset", "-c", o.cpu, ...argv] : argv, { stdout: "pipe", stderr: "pipe" });
  const killer = setTimeout(() => p.kill("SIGKILL"), 120_000);
  const out = await new Response(p.stdout).text();
  await p.exited;
  clearTimeout(killer);
  // "test","rps",...  then  "GET","123456.78",...
  const row = out.split("\n").find((l) => l.startsWith('"GET'));
  const rps = Number(row?.split(",")[1]?.replace(/"/g, ""));
  return Number.isFinite(rps) ? Math.round(rps) : null;
}
