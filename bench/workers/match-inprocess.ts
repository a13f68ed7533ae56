/**
 * The in-process half of `npm run bench -- match`, run pinned to the server
 * core by bench/suites/match.ts:
 *   bun bench/workers/match-inprocess.ts --data-dir DIR --vectors N --queries Q --rounds R --json OUT
 *
 * Writes N claims with clustered 384-d embeddings into the embedded durable
 * store in DIR (the layout `bun src/main.ts --data-dir DIR` opens), then
 * measures with Quiver's own classes: index build from the store (start-up
 * without a snapshot), RSS per vector, snapshot write, start-up from the
 * snapshot (load + catch-up scan), and per efSearch the recall@10 against
 * brute force and the search QPS of Quiver's MatchService vs raw hnswlib on
 * the same index and queries. Leaves the store and the snapshot in DIR for
 * the HTTP half.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config/config.ts";
import { LocalChangeFeed } from "../../src/feed/index.ts";
import { DurableKvNode } from "../../src/kv/durable-node.ts";
import type { FeatureValue, KvEntry } from "../../src/kv/kv-node.ts";
import { encodeKeyPart } from "../../src/kv/keys.ts";
import { MetricsRegistry } from "../../src/ops/index.ts";
import { loadRegistryFile } from "../../src/registry/index.ts";
import { LookupService } from "../../src/serving/index.ts";
import { type ShardMember, ShardedStore } from "../../src/store/sharded-store.ts";
import { BruteForceVectorIndex } from "../../src/vector/brute-force-index.ts";
import { claimAttributes } from "../../src/vector/demo-claims.ts";
import type { HnswVectorIndex } from "../../src/vector/hnsw-index.ts";
import { type MatchQuery, MatchService, SnapshotStore, VectorIndexes } from "../../src/vector/index.ts";
import { clusteredVectors } from "../../test/support/vectors.ts";

const { values: a } = parseArgs({ options: { "data-dir": { type: "string" }, vectors: { type: "string" }, queries: { type: "string" }, rounds: { type: "string" }, json: { type: "string" } } });
const dir = a["data-dir"]!;
const N = Number(a.vectors ?? 100_000);
const Q = Number(a.queries ?? 200);
const ROUNDS = Number(a.rounds ?? 3);
const DIM = 384;
const NOW = Date.now();
const log = (s: string) => process.stderr.write(`  [in-process] ${s}\n`);
const rssMb = () => Math.round((process.memoryUsage.rss() / 1048576) * 10) / 10;

// The store exactly as `bun src/main.ts --data-dir DIR` opens it (defaults: nodes, vnodes, durability).
const config = loadConfig(["--data-dir", dir], {});
const members: ShardMember[] = [];
for (let i = 0; i < config.embeddedNodes; i++) {
  const id = `embedded-${i}`;
  members.push({ id, weight: 1, node: await DurableKvNode.open(id, `${dir}/${id}.sqlite`, { sync: config.durability }) });
}
const store = new ShardedStore(members, { vnodesPerNode: config.vnodes });
const registry = await loadRegistryFile(config.registryPath, NOW);
const view = registry.views.get("claims")!;

log(`generating ${N} + ${Q} clustered ${DIM}-d vectors`);
const data = clusteredVectors(N + Q, DIM, Math.max(10, Math.round(N / 100)), 7);
let t = performance.now();
for (let start = 0; start < N; start += 1000) {
  const entries: KvEntry[] = [];
  for (let i = start; i < Math.min(N, start + 1000); i++) {
    const c = claimAttributes(i + 1, NOW);
    const values: FeatureValue[] = [c.text, c.verdict, c.source, c.language, c.firstSeen, c.cluster, data[i]!];
    entries.push({ key: view.keyPrefix + encodeKeyPart("claim_id", "int64", i + 1), row: { ts: NOW - 1000, values } });
  }
  await store.putMany(entries);
}
const writeS = (performance.now() - t) / 1000;
log(`stored ${N} claims in ${writeS.toFixed(1)} s`);

const open = (metrics: MetricsRegistry) =>
  new VectorIndexes({ store, feed: new LocalChangeFeed("bench"), metrics, snapshots: new SnapshotStore(`${dir}/vector`), snapshotIntervalMs: 0, embedders: { modelPath: "" } });

Bun.gc(true);
const rssBefore = rssMb();
const metrics = new MetricsRegistry();
const vectors = open(metrics);
t = performance.now();
await vectors.start(registry);
const buildS = (performance.now() - t) / 1000;
Bun.gc(true);
const rssAfter = rssMb();
const vi = vectors.get("claims")!;
log(`built the index from the store in ${buildS.toFixed(1)} s; RSS ${rssBefore} -> ${rssAfter} MB`);
t = performance.now();
await vectors.snapshotAll();
const snapshotS = (performance.now() - t) / 1000;
t = performance.now();
const reopened = open(new MetricsRegistry());
await reopened.start(registry);
const loadS = (performance.now() - t) / 1000;
if (reopened.get("claims")!.size !== vi.size) throw new Error("the snapshot did not restore every vector");
await reopened.close();
log(`snapshot written in ${snapshotS.toFixed(1)} s; start-up from it (load + catch-up scan) ${loadS.toFixed(1)} s`);

// Ground truth by brute force, as claim ids.
const exact = new BruteForceVectorIndex(DIM, "cosine", N);
for (let i = 0; i < N; i++) exact.set(i, data[i]!);
const queries = data.slice(N);
const truth = queries.map((q) => new Set(exact.search(q, 10, 0).labels.map((l) => l + 1)));
const idOf = (key: string) => Number(key.slice(key.lastIndexOf("=i") + 2));

const match = new MatchService(vectors, store, new LookupService(store), metrics);
const native = (vi.index as HnswVectorIndex).native;
const table: { efSearch: number; recallAt10: number; quiverQps: number; rawQps: number; ratio: number }[] = [];
for (const ef of [32, 64, 128]) {
  let hits = 0;
  for (let q = 0; q < Q; q++) for (const h of vi.search(queries[q]!, 10, ef, undefined)) if (truth[q]!.has(idOf(h.key))) hits++;
  const recall = hits / (Q * 10);
  const plans: MatchQuery[] = queries.map((vector) => ({ view, query: { kind: "vector", vector }, k: 10, minScore: undefined, filter: undefined, refs: [], efSearch: ef }));
  let best = { quiver: 0, raw: 0 };
  // Alternate raw and Quiver, best of ROUNDS each: a burst of outside load hits both alike.
  for (let r = 0; r < ROUNDS; r++) {
    const passes = Math.max(1, Math.ceil(2000 / Q));
    native.setEf(ef);
    let s = performance.now();
    for (let p = 0; p < passes; p++) for (const q of queries) native.searchKnn(q, 10);
    const raw = (passes * Q) / ((performance.now() - s) / 1000);
    s = performance.now();
    for (let p = 0; p < passes; p++) for (const plan of plans) await match.match(plan);
    const quiver = (passes * Q) / ((performance.now() - s) / 1000);
    best = { quiver: Math.max(best.quiver, quiver), raw: Math.max(best.raw, raw) };
  }
  table.push({ efSearch: ef, recallAt10: Math.round(recall * 10000) / 10000, quiverQps: Math.round(best.quiver), rawQps: Math.round(best.raw), ratio: Math.round((best.quiver / best.raw) * 1000) / 1000 });
  log(`efSearch ${ef}: recall@10 ${recall.toFixed(4)}, Quiver ${Math.round(best.quiver)} q/s, raw hnswlib ${Math.round(best.raw)} q/s`);
}
await vectors.close();
await store.close();

const out = {
  vectors: N,
  dim: DIM,
  queries: Q,
  params: { M: view.index!.M, efConstruction: view.index!.efConstruction, metric: view.index!.metric },
  storeWriteS: Math.round(writeS * 10) / 10,
  buildS: Math.round(buildS * 100) / 100,
  snapshotWriteS: Math.round(snapshotS * 100) / 100,
  startupFromSnapshotS: Math.round(loadS * 100) / 100,
  rssBeforeMb: rssBefore,
  rssAfterMb: rssAfter,
  rssBytesPerVector: Math.round(((rssAfter - rssBefore) * 1048576) / N),
  table,
};
await Bun.write(a.json!, JSON.stringify(out, null, 2));
