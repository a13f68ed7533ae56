import type { FeatureValue, KvEntry, KvNode } from "../kv/kv-node.ts";
import { encodeKeyPart } from "../kv/keys.ts";
import { scanPasses } from "../kv/scan-passes.ts";
import type { CompiledView, Registry } from "../registry/index.ts";
import { claimAttributes } from "../vector/demo-claims.ts";
import type { Embedder } from "../vector/embedder.ts";
import { HashedNgramEmbedder } from "../vector/hashed-ngram-embedder.ts";

/**
 * Deterministic demo rows for the example registry (src/registry/example-registry.yaml),
 * so `npm start`, the README's curls, tests and benchmarks all see the same
 * values for the same ids. Layout (src/api/http/README.md): drivers 1001..1000+N;
 * customers "c0".."c{M-1}" with M = min(N, 10000); affinity pairs (1001+i, "c{i}");
 * claims 1..C with C = min(N, 2000), in clusters of five paraphrases (src/vector/demo-claims.ts).
 */
export interface DemoCounts {
  readonly drivers: number;
  readonly customers: number;
  readonly claims: number;
}

export function demoCounts(entities: number): DemoCounts {
  return { drivers: entities, customers: Math.min(entities, 10_000), claims: Math.min(entities, 2000) };
}

const CITIES = ["Lisbon", "Porto", "Berlin", "Madrid", "Paris"];
const VEHICLES = ["sedan", "sedan", "suv", "van", "electric"];
const SEGMENTS = ["regular", "regular", "new", "vip", "dormant"];
const CATEGORIES = ["food", "airport", "nightlife", "business", "shopping"];

/** A small, fast, deterministic hash of an integer to [0, 1). */
function unit(n: number, salt: number): number {
  let h = Math.imul(n ^ Math.imul(salt, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

function driverValues(id: number): FeatureValue[] {
  return [
    round(unit(id, 1), 4),
    round(0.5 + unit(id, 2) / 2, 4),
    Math.floor(unit(id, 3) * 30),
    unit(id, 4) < 0.8,
    CITIES[id % CITIES.length]!,
    VEHICLES[id % VEHICLES.length]!,
    round(3.5 + unit(id, 5) * 1.5, 2),
    round(unit(id, 6) * 60, 1),
    [id * 10, id * 10 + 1, id * 10 + 2],
    [round(4 + unit(id, 7), 2), round(4 + unit(id, 8), 2)],
  ];
}

function customerValues(i: number): FeatureValue[] {
  const emb = new Array<number>(8);
  for (let d = 0; d < 8; d++) emb[d] = round(unit(i, 20 + d) * 2 - 1, 4);
  return [round(unit(i, 11) * 2000, 2), Math.floor(unit(i, 12) * 40), SEGMENTS[i % SEGMENTS.length]!, i % 7 === 0, [CATEGORIES[i % 5]!, CATEGORIES[(i + 2) % 5]!], 30 + (i % 900), emb];
}

function fraudValues(i: number): FeatureValue[] {
  return [
    round(unit(i, 31) * 300, 2),
    round(unit(i, 32) * 5000, 2),
    Math.floor(unit(i, 33) * 6),
    1 + (i % 3),
    i % 97 === 0,
    round(unit(i, 34), 4),
    [`dev-${i}-a`, `dev-${i}-b`],
  ];
}

/**
 * Claims 1..count, texts embedded in batches (the Embedder interface is
 * batched: a model runs a batch far faster than one text at a time). Values
 * in the example view's order: text, verdict, source, language, first_seen,
 * cluster, embedding of the text.
 */
async function loadClaims(store: KvNode, view: CompiledView, count: number, embedder: Embedder, now: number): Promise<number> {
  let written = 0;
  for (let start = 0; start < count; start += 500) {
    const ids = Array.from({ length: Math.min(500, count - start) }, (_, i) => start + i + 1);
    const attrs = ids.map((id) => claimAttributes(id, now));
    const vectors = await embedder.embed(attrs.map((a) => a.text));
    const entries = attrs.map(
      (a, i): KvEntry => ({
        key: view.keyPrefix + encodeKeyPart("claim_id", "int64", ids[i]!),
        row: { ts: now - 1000 - (ids[i]! % 3_000) * 1000, values: [a.text, a.verdict, a.source, a.language, a.firstSeen, a.cluster, vectors[i]!] },
      }),
    );
    written += (await store.putMany(entries)).written;
  }
  return written;
}

function affinityValues(i: number): FeatureValue[] {
  return [1 + (i % 9), round(4 + unit(i, 41), 2), round(unit(i, 42) * 0.25, 3), i % 50 === 0];
}

/**
 * Is the store empty, so demo data may go in? Answers "no" when it cannot
 * tell: demo rows are stamped now and would win over real ones (last write
 * wins). Pages until it finds a key or the scan ends: a page of a SCAN can
 * come back empty with more to follow (Redis does that; a ring answers its
 * first node's pages first, so data on any other node came after an empty
 * page), and only the end of the scan says the store is empty. A scan whose
 * shard's primary became another process meanwhile (a failover, a restart:
 * ScanRestartError) starts again from the start, up to SCAN_RESTARTS times:
 * its cursor would have skipped keys, maybe every key there is.
 */
export async function storeIsEmpty(store: KvNode, log: (line: string) => void = (l) => console.error(l)): Promise<boolean> {
  const pass = async (): Promise<boolean> => {
    let cursor = "0";
    for (let page = 0; page < 100_000; page++) {
      const p = await store.scan(cursor, 100);
      if (p.keys.length > 0) return false;
      cursor = p.cursor;
      if (cursor === "0") return true;
    }
    // A scan that has not ended after 100,000 pages is no empty store.
    return false;
  };
  try {
    return await scanPasses(pass, (e, restart) => log(`quiver: demo data: scanning the store again from the start (restart ${restart}): ${e.message}`));
  } catch (e) {
    log(`quiver: could not tell whether the store is empty (${(e as Error).message}); demo data not loaded`);
    return false;
  }
}

/**
 * Writes the demo rows for every example view present in `registry`, in
 * batches. Event times are spread over the last hour before `now`, inside
 * every view's max age. Views absent from the registry are skipped.
 */
export async function loadDemoData(store: KvNode, registry: Registry, entities: number, now: number): Promise<number> {
  const { drivers, customers, claims } = demoCounts(entities);
  let total = 0;
  const put = async (view: CompiledView | undefined, count: number, key: (i: number) => string, values: (i: number) => FeatureValue[]) => {
    if (!view) return;
    const batch = 5000;
    for (let start = 0; start < count; start += batch) {
      const end = Math.min(count, start + batch);
      const entries = new Array<KvEntry>(end - start);
      for (let i = start; i < end; i++) {
        entries[i - start] = { key: view.keyPrefix + key(i), row: { ts: now - 1000 - (i % 3_000) * 1000, values: values(i) } };
      }
      total += (await store.putMany(entries)).written;
    }
  };
  await put(registry.views.get("driver_hourly_stats"), drivers, (i) => encodeKeyPart("driver_id", "int64", 1001 + i), (i) => driverValues(1001 + i));
  await put(registry.views.get("customer_profile"), customers, (i) => encodeKeyPart("customer_id", "string", `c${i}`), customerValues);
  await put(registry.views.get("fraud_signals"), customers, (i) => encodeKeyPart("customer_id", "string", `c${i}`), fraudValues);
  await put(
    registry.views.get("driver_customer_affinity"),
    customers,
    (i) => `${encodeKeyPart("driver_id", "int64", 1001 + i)};${encodeKeyPart("customer_id", "string", `c${i}`)}`,
    affinityValues,
  );
  const claimsView = registry.views.get("claims");
  const dim = claimsView?.index?.dim;
  if (claimsView && dim !== undefined) total += await loadClaims(store, claimsView, claims, new HashedNgramEmbedder(dim), now);
  return total;
}
