import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { HashedNgramEmbedder } from "../src/vector/hashed-ngram-embedder.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Two pods on one Redis shard with the change feed turned off (`--cache-feed
 * off`; by default it runs on the first shard when there is no L2): each pod
 * hears only its own writes. A claim pushed on one was never matched on the
 * other; with --vector-catch-up-interval the other's index re-reads the store.
 */
let origin: RedisProcess;
let dir: string;
let a: Quiver;
let b: Quiver;

beforeAll(async () => {
  origin = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "quiver-vector-nofeed-"));
  const topology = join(dir, "topology.yaml");
  writeFileSync(topology, ["shards:", `  - { name: s1, primary: "${origin.address}", writeAcks: 0 }`, ""].join("\n"));
  const args = ["--topology", topology, "--demo-entities", "0", "--vector-catch-up-interval", "200ms", "--cache-feed", "off"];
  a = await buildQuiver(loadConfig(args, {}), { podId: "a" });
  b = await buildQuiver(loadConfig(args, {}), { podId: "b" });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([a?.close(), b?.close()]);
  await origin?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const embed = new HashedNgramEmbedder(384);
const json = { "content-type": "application/json" };

async function topMatch(pod: Quiver, text: string): Promise<number | undefined> {
  const res = await pod.http.app.request("/v1/match", { method: "POST", headers: json, body: JSON.stringify({ view: "claims", text, k: 1 }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { matches: { entity: { claim_id: number } }[] }).matches[0]?.entity.claim_id;
}

test("a claim pushed on one pod is matched on the other within the catch-up interval, without a shared feed", async () => {
  expect(b.feed.state().kind).toBe("local");
  const text = "The lottery machine in Porto is rigged by a retired magician";
  const row = { claim_id: 42, text, verdict: "false", source: "telegram", language: "en", first_seen: 1, cluster: -1, embedding: embed.embedNow(text) };
  const pushed = await a.http.app.request("/v1/push", { method: "POST", headers: json, body: JSON.stringify({ featureView: "claims", rows: [row] }) });
  expect(pushed.status).toBe(200);
  await a.vectors.idle();
  expect(await topMatch(a, text)).toBe(42);
  // Asked until it matches: when depends on the interval's timer and how busy the machine is, so no latency is
  // asserted. 20 s (100 intervals) is only reached if pod b never catches up.
  const start = performance.now();
  let seen = await topMatch(b, text);
  while (seen !== 42 && performance.now() - start < 20_000) {
    await Bun.sleep(20);
    seen = await topMatch(b, text);
  }
  console.log(`${seen === 42 ? "matched" : "still not matched"} on the other pod after ${(performance.now() - start).toFixed(0)} ms (interval 200 ms)`);
  // Never matched on pod b before: it heard nothing of the push.
  expect(seen).toBe(42);
}, 40_000);
