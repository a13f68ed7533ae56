import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { NO_SHEDDING, type QuiverProcess, startQuiver } from "./support/quiver-process.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Two real Quiver processes sharing one L2 (and its change feed) and one
 * origin shard. Latency figures are printed; assertions are generous so a
 * loaded machine does not fail them (the goals: visibility < 100 ms
 * p99, namespace invalidation < 1 s).
 */

const TOKEN = "cache-test-token";
const VIEW = "fraud_signals";
const FEATURES = [`${VIEW}:spend_1h`, `${VIEW}:txn_count_1h`];

interface LookupAnswer {
  rows: { values: unknown[]; statuses: string[]; eventTimestamps: number[]; stale?: boolean[] }[];
}

/**
 * Lookups here assert what the tiers hold, not the request deadline: a budget well past the shard's own
 * request timeout (400 ms), so a loaded machine's slow origin read is not answered with defaults at the
 * 50 ms default budget (it was, once, under two busy cores).
 */
const LOOKUP_HEADERS = { "content-type": "application/json", "x-quiver-timeout-ms": "5000" };

async function lookup(pod: QuiverProcess, customers: readonly string[]): Promise<{ body: LookupAnswer; stale: string | null }> {
  const res = await fetch(`${pod.url}/v1/lookup`, {
    method: "POST",
    headers: LOOKUP_HEADERS,
    body: JSON.stringify({ features: FEATURES, entities: { customer_id: customers } }),
  });
  expect(res.status).toBe(200);
  return { body: (await res.json()) as LookupAnswer, stale: res.headers.get("x-quiver-stale") };
}

async function push(pod: QuiverProcess, customer: string, ts: number, spend: number): Promise<void> {
  const res = await fetch(`${pod.url}/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ featureView: VIEW, rows: [{ customer_id: customer, spend_1h: spend, txn_count_1h: 1, event_timestamp: ts }] }),
  });
  expect(res.status).toBe(200);
}

async function readyz(pod: QuiverProcess): Promise<Record<string, unknown>> {
  return (await (await fetch(`${pod.url}/readyz`)).json()) as Record<string, unknown>;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

describe("two Quiver pods sharing one L2 and one origin", () => {
  let origin: RedisProcess;
  let l2: RedisProcess;
  let dir: string;
  let a: QuiverProcess;
  let b: QuiverProcess;

  beforeAll(async () => {
    [origin, l2] = await Promise.all([startRedis(), startRedis({ extra: ["maxmemory 64mb", "maxmemory-policy allkeys-lru"] })]);
    dir = mkdtempSync(join(tmpdir(), "quiver-cache-pods-"));
    const topology = join(dir, "topology.yaml");
    writeFileSync(
      topology,
      [
        "shards:",
        `  - { name: s1, primary: "${origin.address}", writeAcks: 0, requestTimeoutMs: 400, attemptTimeoutMs: 300 }`,
        "cache:",
        `  l2: "${l2.address}"`,
        "  l2Timeout: 250ms",
        "  ttl: 2s",
        "  l2Ttl: 2s",
        "",
      ].join("\n"),
    );
    // These pods test the cache tiers, not admission: on a starved host pod B refused a reader whose wait for a
    // slot (the limit at its floor probe, 2 in flight) outlasted the 50 ms queue timeout in an 833 ms loop turn.
    const args = ["--topology", topology, "--demo-entities", "0", "--admin-token", TOKEN, ...NO_SHEDDING];
    [a, b] = await Promise.all([startQuiver(args), startQuiver(args)]);
  }, 60_000);

  afterAll(async () => {
    origin?.resume();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([origin?.stop(), l2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("readers on pod B see per-key event times never go back, and pod A's acknowledged writes within a bound, through a feed break", async () => {
    const customers = Array.from({ length: 20 }, (_, i) => `mono-${i}`);
    const base = Date.now() - 60_000;
    const acked = new Map<string, { ts: number; at: number }[]>();
    let stop = false;
    let regressions = 0;
    const observations: { key: string; ts: number; at: number }[] = [];

    const reader = async (): Promise<number> => {
      const last = new Map<string, number>();
      let n = 0;
      while (!stop && n < 20_000) {
        const { body } = await lookup(b, customers);
        const at = performance.now();
        body.rows.forEach((r, i) => {
          const key = customers[i]!;
          const ts = r.eventTimestamps[0]!;
          if (ts < (last.get(key) ?? 0)) regressions++;
          last.set(key, ts);
          observations.push({ key, ts, at });
        });
        n++;
      }
      return n;
    };
    const readers = Array.from({ length: 3 }, () => reader());

    const writes = 200;
    for (let i = 1; i <= writes; i++) {
      const key = customers[i % customers.length]!;
      const ts = base + i;
      await push(a, key, ts, i);
      const list = acked.get(key) ?? [];
      list.push({ ts, at: performance.now() });
      acked.set(key, list);
      if (i === writes / 2) {
        // Break every feed subscription on the L2: pod B must clear L1 when it resubscribes.
        const raw = new Redis({ host: "127.0.0.1", port: l2.port });
        await raw.call("CLIENT", "KILL", "TYPE", "pubsub");
        raw.disconnect();
      }
      await Bun.sleep(5);
    }
    // Let readers observe the final values, then stop them.
    const finalTs = new Map([...acked].map(([k, list]) => [k, list[list.length - 1]!.ts]));
    const deadline = performance.now() + 10_000;
    const seenFinal = () => customers.every((k) => observations.some((o) => o.key === k && o.ts >= finalTs.get(k)!));
    while (!seenFinal() && performance.now() < deadline) await Bun.sleep(20);
    stop = true;
    const lookups = (await Promise.all(readers)).reduce((x, y) => x + y, 0);

    // Visibility of each acknowledged write on pod B: first observation of it (or newer) after its ack.
    const lags: number[] = [];
    for (const [key, list] of acked) {
      for (const { ts, at } of list) {
        const seen = observations.find((o) => o.key === key && o.ts >= ts && o.at >= at);
        if (seen) lags.push(seen.at - at);
      }
    }
    lags.sort((x, y) => x - y);
    const ready = await readyz(b);
    const feed = ready.feed as { gaps: number; connected: boolean };
    console.log(
      `two pods: ${writes} writes on A, ${lookups} lookups of 20 keys on B; visibility on B p50 ${percentile(lags, 50).toFixed(1)} ms, p99 ${percentile(lags, 99).toFixed(1)} ms, max ${lags[lags.length - 1]?.toFixed(1)} ms; feed gaps on B: ${feed.gaps}`,
    );
    expect(regressions).toBe(0);
    expect(seenFinal()).toBe(true);
    expect(lags.length).toBe(writes);
    expect(feed.gaps).toBeGreaterThanOrEqual(1);
    // Generous bound for a loaded machine (the goal is < 100 ms p99; the printed figure is the measurement).
    expect(percentile(lags, 99)).toBeLessThan(2_000);
  }, 60_000);

  test("a namespace invalidation through pod A reaches pod B in under a second", async () => {
    const key = "inv-1";
    await push(a, key, Date.now() - 1000, 1);
    expect((await lookup(b, [key])).body.rows[0]!.values[0]).toBe(1);
    // Change the row behind the caches' back (as a schema migration or a repair job would): B keeps serving its copy.
    const node = await RedisKvNode.connect({ host: origin.host, port: origin.port });
    const storageKey = `${VIEW}@2/customer_id=s${key.length}:${key}`;
    await node.putMany([{ key: storageKey, row: { ts: Date.now() - 500, values: [2, null, 1, null, null] } }]);
    await node.close();
    expect((await lookup(b, [key])).body.rows[0]!.values[0]).toBe(1);

    const started = performance.now();
    const res = await fetch(`${a.url}/admin/cache/invalidate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ view: VIEW }),
    });
    expect(res.status).toBe(200);
    let seen = false;
    while (!seen && performance.now() - started < 5_000) seen = (await lookup(b, [key])).body.rows[0]!.values[0] === 2;
    const ms = performance.now() - started;
    console.log(`namespace invalidation: pod B served the new row ${ms.toFixed(1)} ms after the admin call on pod A`);
    expect(seen).toBe(true);
    expect(ms).toBeLessThan(1_000);
  }, 30_000);

  test("the admin route validates its body and requires the token", async () => {
    const post = (body: unknown, auth = true) =>
      fetch(`${a.url}/admin/cache/invalidate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) },
        body: JSON.stringify(body),
      });
    expect((await post({ view: VIEW }, false)).status).toBe(401);
    const unknown = await post({ view: "nope" });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { path: string } }).error.path).toBe("view");
    expect((await post({ all: "yes" })).status).toBe(400);
    expect((await post({ view: VIEW, all: true })).status).toBe(400);
    expect((await post({ colour: 1 })).status).toBe(400);
    expect((await post({ all: true })).status).toBe(200);
  });

  test("grace: with the origin stopped, an expired cached row is served flagged stale; an uncached key gets its default as UNAVAILABLE", async () => {
    const key = "grace-1";
    await push(a, key, Date.now() - 1000, 7);
    expect((await lookup(b, [key])).body.rows[0]!.values[0]).toBe(7);
    // Past both TTLs (2 s): the next read must ask the origin.
    await Bun.sleep(2_300);
    origin.pause();
    try {
      const { body, stale } = await lookup(b, [key, "grace-never-seen"]);
      expect(body.rows[0]!.values[0]).toBe(7);
      expect(body.rows[0]!.statuses[0]).toBe("PRESENT");
      expect(body.rows[0]!.stale).toEqual([true, true]);
      expect(body.rows[1]!.statuses[0]).toBe("UNAVAILABLE");
      expect(body.rows[1]!.stale).toEqual([false, false]);
      expect(stale).toBe("2");
      // Feast's route carries the same header (its body has no place for a marker), and counts the unavailable values
      // it answers NOT_FOUND (Feast's statuses have no UNAVAILABLE) in x-quiver-unavailable.
      const feast = await fetch(`${b.url}/get-online-features`, {
        method: "POST",
        headers: LOOKUP_HEADERS,
        body: JSON.stringify({ features: FEATURES, entities: { customer_id: [key, "grace-never-seen"] } }),
      });
      expect(feast.status).toBe(200);
      expect(feast.headers.get("x-quiver-stale")).toBe("2");
      expect(feast.headers.get("x-quiver-unavailable")).toBe(String(FEATURES.length));
      const columns = ((await feast.json()) as { results: { statuses: string[] }[] }).results.slice(1);
      for (const c of columns) expect(c.statuses).toEqual(["PRESENT", "NOT_FOUND"]);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/quiver_cache_stale_served_total [1-9]/);
    } finally {
      origin.resume();
    }
  }, 30_000);

  test("/readyz shows the tiers and the feed; /metrics the cache series", async () => {
    // The origin was stopped by the previous test: wait for its health probe to see it back.
    let ready = await readyz(b);
    for (let i = 0; i < 200 && ready.ready !== true; i++) {
      await Bun.sleep(50);
      ready = await readyz(b);
    }
    expect(ready.ready).toBe(true);
    expect(ready.cache).toMatchObject({ l2: { connected: true } });
    expect(ready.feed).toMatchObject({ kind: "redis", connected: true });
    expect(ready.degraded).toEqual([]);
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/quiver_cache_bytes\{tier="l2",kind="budget"\} 67108864/);
    for (const name of ["quiver_cache_hits_total", "quiver_cache_misses_total", "quiver_cache_fills_total", "quiver_cache_bytes", "quiver_cache_invalidation_lag_seconds_count", "quiver_cache_invalidations_total"]) {
      expect(metrics).toContain(name);
    }
  }, 20_000);
});
