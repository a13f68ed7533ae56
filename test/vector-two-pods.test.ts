import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Two real Quiver pods on one Redis origin shard, with the change feed over
 * the shared L2 Redis: a claim pushed on one pod is matched on the other
 * (each pod answers from its own index, kept current by the feed). The
 * visibility times are printed; the goal is within 1 s.
 */
const embed = new HashedNgramEmbedder(384);
const CLAIMS = [
  "Drinking bleach with honey cures the flu in two days say doctors in Lisbon",
  "The harbour bridge will be closed forever because of a secret tunnel project",
  "Eating raw garlic every morning stops all strokes according to a leaked memo",
  "Solar panels on school roofs are draining the memory of young pupils",
  "The lottery machine in Porto is rigged by a retired magician",
];

async function push(pod: QuiverProcess, id: number, text: string): Promise<void> {
  const res = await fetch(`${pod.url}/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ featureView: "claims", rows: [{ claim_id: id, text, verdict: "false", source: "telegram", language: "en", first_seen: 1, cluster: -1, embedding: embed.embedNow(text) }] }),
  });
  expect(res.status).toBe(200);
}

async function topMatch(pod: QuiverProcess, text: string): Promise<number | undefined> {
  const res = await fetch(`${pod.url}/v1/match`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ view: "claims", text, k: 1 }) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { matches: { entity: { claim_id: number } }[] };
  return body.matches[0]?.entity.claim_id;
}

async function feedConnected(pod: QuiverProcess): Promise<boolean> {
  const body = (await (await fetch(`${pod.url}/readyz`)).json()) as { feed?: { connected?: boolean } };
  return body.feed?.connected === true;
}

/** Polls until `pod` matches `text` to claim `id`; answers the milliseconds it took, or Infinity after 10 s. */
async function visibleAfter(pod: QuiverProcess, text: string, id: number, since: number): Promise<number> {
  while (performance.now() - since < 10_000) {
    if ((await topMatch(pod, text)) === id) return performance.now() - since;
    await Bun.sleep(5);
  }
  return Number.POSITIVE_INFINITY;
}

describe("claim matching across two pods", () => {
  let origin: RedisProcess;
  let l2: RedisProcess;
  let dir: string;
  let a: QuiverProcess;
  let b: QuiverProcess;

  beforeAll(async () => {
    [origin, l2] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-vector-pods-"));
    const topology = join(dir, "topology.yaml");
    // The catch-up test stops the origin: a scan gives up after 1 s (the failover window it retries through, 10 s by
    // default) and the breaker lets a trial through after 500 ms, so the test waits seconds, not tens of them.
    writeFileSync(topology, ["shards:", `  - { name: s1, primary: "${origin.address}", writeAcks: 0, failoverWindowMs: 1000, breakerOpenMs: 500 }`, "cache:", `  l2: "${l2.address}"`, ""].join("\n"));
    const args = ["--topology", topology, "--demo-entities", "0"];
    [a, b] = await Promise.all([startQuiver(args, 60_000), startQuiver(args, 60_000)]);
    // A pod may come up before its feed subscription does (loaded machine): start once both follow the feed.
    for (const pod of [a, b]) {
      for (let i = 0; i < 200 && !(await feedConnected(pod)); i++) await Bun.sleep(50);
      expect(await feedConnected(pod)).toBe(true);
    }
  }, 90_000);

  // A pod's shutdown waits for a vector catch-up attempt in flight (its store scan, bounded by the shard's
  // failover window): the origin was stopped in the last test, and a feed loss is a gap (a catch-up) too.
  afterAll(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await Promise.allSettled([origin?.stop(), l2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  test("a claim pushed on one pod is matched on the other within 1 s", async () => {
    const times: number[] = [];
    for (let i = 0; i < CLAIMS.length; i++) {
      const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
      const start = performance.now();
      await push(writer, 500_000 + i, CLAIMS[i]!);
      times.push(await visibleAfter(reader, CLAIMS[i]!, 500_000 + i, start));
    }
    console.log(`pushed on one pod, matched on the other after (ms): ${times.map((t) => t.toFixed(1)).join(", ")}`);
    for (const t of times) expect(t).toBeLessThan(1000);
  }, 60_000);

  test("an update on one pod moves the claim on the other", async () => {
    const moved = "Wind turbines in the valley hypnotise the cows at night";
    const start = performance.now();
    await push(b, 500_000, moved);
    expect(await visibleAfter(a, moved, 500_000, start)).toBeLessThan(1000);
    // The old text no longer finds it: nothing left is a near-duplicate of it. Polled within the same 1 s: the top
    // match for the new text can be claim 500000 while its old vector is still indexed (k = 1 takes the nearest of
    // five), and one full-suite run of 12-05 asked before the update had reached pod A's index.
    const nearOld = async () => {
      const res = await fetch(`${a.url}/v1/match`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ view: "claims", text: CLAIMS[0], k: 5, minScore: 0.8 }) });
      return ((await res.json()) as { matches: unknown[] }).matches;
    };
    let left = await nearOld();
    while (left.length > 0 && performance.now() - start < 1000) {
      await Bun.sleep(5);
      left = await nearOld();
    }
    expect(left).toEqual([]);
  }, 30_000);

  /** Kills the feed's Redis and pushes a claim on pod a, which hears its own write locally; pod b hears nothing. */
  async function pushWhileFeedDown(id: number, text: string): Promise<void> {
    await l2.kill9();
    const pushed = performance.now();
    await push(a, id, text);
    expect(await visibleAfter(a, text, id, pushed)).toBeLessThan(10_000);
  }

  test("a pod that missed feed events (the feed's Redis died) catches up from the store once the feed is back", async () => {
    const text = "Pigeons in the main square are government drones recharging on power lines";
    await pushWhileFeedDown(600_000, text);
    // Pod b catches up when it loses the feed too (a gap then, since 12-07), racing the push: it may or may not
    // match it yet. Once the feed is back it must (the gap on reconnect catches up again).
    await l2.restart();
    const start = performance.now();
    const after = await visibleAfter(b, text, 600_000, start);
    console.log(`matched on the other pod ${after.toFixed(0)} ms after the feed's Redis came back (gap → catch-up scan)`);
    expect(after).toBeLessThan(10_000);
  }, 60_000);

  test("a catch-up that finds the origin stopped is tried again until it has read every row", async () => {
    const text = "Street lights in the old town dim whenever a vaccine truck drives by";
    await pushWhileFeedDown(700_000, text);
    // The feed comes back while the origin is stopped: pod b's catch-up scan cannot read it.
    origin.pause();
    try {
      await l2.restart();
      const deadline = performance.now() + 30_000;
      while ((await retriesOf(b)) === 0 && performance.now() < deadline) await Bun.sleep(50);
      expect(await retriesOf(b)).toBeGreaterThan(0);
    } finally {
      origin.resume();
    }
    const start = performance.now();
    const after = await visibleAfter(b, text, 700_000, start);
    console.log(`matched on the other pod ${after.toFixed(0)} ms after the origin came back (catch-up tried again)`);
    expect(after).toBeLessThan(10_000);
  }, 60_000);
});

/** Pod's vector catch-up retries so far (quiver_vector_task_retries_total, any view and task). */
async function retriesOf(pod: QuiverProcess): Promise<number> {
  const text = await (await fetch(`${pod.url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^quiver_vector_task_retries_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}
