import type { KvNode } from "../src/kv/kv-node.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { guardShard, IGNORE_OBSERVER } from "../src/resilience/shards.ts";
import { LookupService } from "../src/serving/index.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { type RedisProcess, startRedis } from "../test/support/redis-process.ts";
import { waitForQuiet } from "./lib/machine.ts";
import { canPin } from "./lib/processes.ts";
import { closedLoop, loadRows } from "./lib/policy-loop.ts";

/**
 * Part 1 of the resilience suite alone (policies on vs off), for iterating on
 * the read path's policy cost:
 * `taskset -c 1 bun bench/policy-overhead.ts [seconds per round = 1] [rounds = 10]`.
 * The same setup and loop as bench/suites/resilience.ts part 1: 3 redis-server
 * shards, 10,000 drivers, 32 concurrent single-entity lookups of 4 features
 * through LookupService, the same ReplicaSets with and without their policies.
 * The redis-servers are pinned to core 0 (the bench's driver core), this
 * process to whatever the caller pinned it to. Rounds are short and alternate
 * off/on, each pair after waiting for a quiet machine (another process may be
 * benchmarking). Prints each round's ratio and the median; writes nothing.
 */
const seconds = Number(process.argv[2] ?? 1);
const count = Number(process.argv[3] ?? 10);
const root = `${import.meta.dir}/..`;
const log = (line: string) => process.stderr.write(`${line}\n`);





const servers: RedisProcess[] = await Promise.all([0, 1, 2].map(() => startRedis()));
const sets: ReplicaSet[] = [];
try {
  if (canPin()) for (const s of servers) Bun.spawnSync(["taskset", "-pc", "0", String(s.pid)], { stdout: "ignore" });
  for (const [i, s] of servers.entries()) {
    sets.push(await ReplicaSet.connect({ id: `s${i + 1}`, discovery: new StaticDiscovery({ primary: s.address, replicas: [] }), writeAcks: 0 }));
  }
  const registry = await loadRegistryFile(`${root}/src/registry/example-registry.yaml`, Date.now());
  const view = registry.views.get("driver_hourly_stats")!;
  const refs = view.features.slice(0, 4).map((feature) => ({ view, feature }));
  const plain = new ShardedStore(sets.map((s) => ({ id: s.id, weight: 1, node: s as KvNode })));
  const guarded = new ShardedStore(sets.map((s) => ({ id: s.id, weight: 1, node: guardShard(s, { ...s.tuning, requestTimeoutMs: 1000 }, IGNORE_OBSERVER) })));
  await loadRows(plain, view.keyPrefix, view.features.length);
  const off = new LookupService(plain);
  const on = new LookupService(guarded);
  // Warm-up: JIT, connections, redis-servers.
  await closedLoop(off, refs, 2);
  await closedLoop(on, refs, 2);
  const rounds: { off: number; on: number }[] = [];
  for (let r = 0; r < count; r++) {
    const busy = await waitForQuiet(60, () => {});
    const a = await closedLoop(off, refs, seconds);
    const b = await closedLoop(on, refs, seconds);
    rounds.push({ off: a, on: b });
    log(`  round ${r + 1} (machine ${busy === null ? "?" : Math.round(busy * 100)}% busy before): policies off ${Math.round(a)} lookups/s, on ${Math.round(b)} lookups/s (ratio ${(b / a).toFixed(3)})`);
  }
  const ratios = rounds.map((r) => r.on / r.off).sort((a, b) => a - b);
  log(`median ratio ${ratios[Math.floor(ratios.length / 2)]!.toFixed(3)}; best on / best off ${(Math.max(...rounds.map((r) => r.on)) / Math.max(...rounds.map((r) => r.off))).toFixed(3)}`);
} finally {
  await Promise.all(sets.map((s) => s.close()));
  await Promise.all(servers.map((s) => s.stop()));
}
