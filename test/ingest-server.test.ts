import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { loadSourcesFile, openPublisher } from "../src/ingest/index.ts";
import { EventGenerator } from "../src/ingest/event-generator.ts";
import { eventually } from "./stream-source-contract.ts";
import { type NatsProcess, startNats } from "./support/nats-process.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * The server with `--sources`: both engines consumed inside it, values
 * visible to lookups, consumer states on /readyz, ingest metrics on /metrics,
 * and freshness (event time → visible) at 5,000 events/s on the embedded store.
 */
const dir = mkdtempSync(join(tmpdir(), "quiver-ingest-server-"));
let redis: RedisProcess;
let nats: NatsProcess;
let q: Quiver;

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedis(), startNats()]);
  // The example sources file, pointed at this test's servers.
  const example = await Bun.file("src/ingest/example-sources.yaml").text();
  writeFileSync(join(dir, "sources.yaml"), example.replace("redis://127.0.0.1:6379", `redis://${redis.address}`).replace("nats://127.0.0.1:4222", nats.url));
  q = await buildQuiver(loadConfig(["--sources", join(dir, "sources.yaml"), "--demo-entities", "0"], {}));
}, 60_000);

afterAll(async () => {
  await q?.close();
  await Promise.all([redis?.stop(), nats?.stop()]);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** p99 from a Prometheus histogram's cumulative buckets: the smallest bucket bound holding 99 % of observations. */
function p99Bound(metricsText: string, name: string, label: string): number {
  const buckets: Array<[number, number]> = [];
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(label)) continue;
    const le = /le="([^"]+)"/.exec(line)![1]!;
    buckets.push([le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(line.slice(line.lastIndexOf(" ") + 1))]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets[buckets.length - 1]![1];
  return buckets.find(([, count]) => count >= total * 0.99)![0];
}

test("both example sources run inside the server: values visible to lookups, states on /readyz, metrics on /metrics", async () => {
  const sources = await loadSourcesFile(join(dir, "sources.yaml"), q.registry.current);
  const walletSource = sources.find((s) => s.engine === "nats")!;
  const generator = new EventGenerator(walletSource, q.registry.current, { entities: 50, mix: { duplicates: 0, late: 0, malformed: 0 } });
  const publisher = await openPublisher(walletSource);
  try {
    await publisher.publish(Array.from({ length: 200 }, () => generator.next().payload));
  } finally {
    await publisher.close();
  }
  await eventually("wallet events written", () => q.ingest!.status().find((s) => s.source === "payments_nats")!.written > 0 && q.ingest!.status()[1]!.consumed === 200);
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: ["fraud_signals:spend_1h", "fraud_signals:risk_score"], entities: [{ customer_id: "c1" }, { customer_id: "c2" }, { customer_id: "c3" }] }),
  });
  const body = (await res.json()) as { rows: Array<{ values: unknown[]; statuses: string[] }> };
  expect(body.rows.some((r) => r.statuses[0] === "PRESENT" && r.values[1] === 0.2)).toBe(true);

  const ready = (await (await q.http.app.request("/readyz")).json()) as { ingest: Array<{ source: string; engine: string; state: string }> };
  expect(ready.ingest.map((c) => [c.source, c.engine, c.state])).toEqual([
    ["payments_redis", "redis", "running"],
    ["payments_nats", "nats", "running"],
  ]);
  const metrics = await (await q.http.app.request("/metrics")).text();
  expect(metrics).toContain('quiver_ingest_events_total{source="payments_nats",outcome="written"}');
  expect(metrics).toContain("quiver_ingest_freshness_seconds_bucket");
  expect(metrics).toContain('quiver_ingest_lag{source="payments_redis",kind="pending"}');
  // Nothing was trimmed or deleted: Redis says so; NATS cannot tell, so it has no figure.
  expect(metrics).toContain('quiver_ingest_lost{source="payments_redis",when="unread"} 0');
  expect(metrics).toContain('quiver_ingest_lost{source="payments_redis",when="pending"} 0');
  expect(metrics).not.toContain('quiver_ingest_lost{source="payments_nats"');
  // The wallet events carry idempotency keys: the dedup window reports what it holds, within its budget, and how far back.
  const gauge = (name: string) => Number(new RegExp(`^${name}\\{view="fraud_signals"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
  expect(gauge("quiver_ingest_dedup_keys")).toBeGreaterThan(0);
  expect(gauge("quiver_ingest_dedup_bytes")).toBeGreaterThan(gauge("quiver_ingest_dedup_keys") * 80);
  expect(gauge("quiver_ingest_dedup_span_seconds")).toBeGreaterThanOrEqual(0);
}, 60_000);

test("freshness at 5,000 events/s on the embedded store: p99 event-to-visible is printed", async () => {
  const sources = await loadSourcesFile(join(dir, "sources.yaml"), q.registry.current);
  const cardSource = sources.find((s) => s.engine === "redis")!;
  const generator = new EventGenerator(cardSource, q.registry.current, { entities: 10_000, seed: 3, mix: { duplicates: 0, late: 0, malformed: 0 } });
  const publisher = await openPublisher(cardSource);
  const before = q.ingest!.status()[0]!;
  const total = 10_000;
  const rate = 5000;
  try {
    // Paced in 10 ms ticks (50 events each) for two seconds; bounded by count.
    const started = performance.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 50);
      if (due > sent) {
        const batch = Array.from({ length: due - sent }, () => generator.next().payload);
        await publisher.publish(batch);
        sent += batch.length;
      }
      await Bun.sleep(10);
    }
  } finally {
    await publisher.close();
  }
  await eventually("every event handled", () => {
    const s = q.ingest!.status()[0]!;
    return s.written + s.duplicate + s.late - (before.written + before.duplicate + before.late) === total;
  });
  const p99 = p99Bound(await (await q.http.app.request("/metrics")).text(), "quiver_ingest_freshness_seconds", 'view="fraud_signals"');
  console.log(`freshness at ${rate} events/s, embedded store: p99 event-to-visible <= ${p99 * 1000} ms (histogram bucket bound; goal 100 ms)`);
  // Generous: the machine is shared; the printed figure is what counts, the assertion catches a broken pipeline.
  expect(p99).toBeLessThanOrEqual(2.5);
}, 120_000);

test("a replayed event the store lost is written again, though a cache still holds its row (the duplicate check reads the store)", async () => {
  const replayDir = mkdtempSync(join(tmpdir(), "quiver-ingest-replay-"));
  const sourcesPath = join(replayDir, "sources.yaml");
  writeFileSync(
    sourcesPath,
    [
      "sources:",
      "  - name: replays",
      "    engine: redis",
      `    redis: { url: "redis://${redis.address}", stream: replays, group: quiver }`,
      "    mappings:",
      "      - featureView: fraud_signals",
      "        keys: { customer_id: customer }",
      "        eventTime: { path: ts, format: epoch_ms }",
      "        features: { spend_1h: spend }",
    ].join("\n"),
  );
  const q2 = await buildQuiver(loadConfig(["--sources", sourcesPath, "--demo-entities", "0", "--cache-l1", "on", "--grpc-port", "-1"], {}));
  const { Redis } = await import("ioredis");
  const producer = new Redis({ host: "127.0.0.1", port: redis.port });
  try {
    const event = JSON.stringify({ customer: "c777", ts: Date.now() - 1000, spend: 12.5 });
    const status = () => q2.ingest!.status()[0]!;
    await producer.xadd("replays", "*", "data", event);
    await eventually("event written", () => status().written === 1);
    const lookup = async () => {
      const res = await q2.http.app.request("/v1/lookup", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: ["fraud_signals:spend_1h"], entities: [{ customer_id: "c777" }] }),
      });
      return ((await res.json()) as { rows: Array<{ values: unknown[]; statuses: string[] }> }).rows[0]!;
    };
    expect(await lookup()).toMatchObject({ values: [12.5], statuses: ["PRESENT"] });
    // The store loses the row (a shard restarted empty); L1 still holds it.
    const prefix = q2.registry.current.views.get("fraud_signals")!.keyPrefix;
    const keys: string[] = [];
    let cursor = "0";
    do {
      const page = await q2.store.scan(cursor, 1000, prefix);
      keys.push(...page.keys);
      cursor = page.cursor;
    } while (cursor !== "0");
    expect(keys.length).toBe(1);
    await q2.store.deleteMany(keys);
    expect(await q2.store.getMany(keys)).toEqual([undefined]);
    // The operator replays the stream's event.
    await producer.xadd("replays", "*", "data", event);
    await eventually("replay handled", () => status().consumed === 2);
    expect(status()).toMatchObject({ written: 2, duplicate: 0 });
    const [slot] = await q2.store.getMany(keys);
    expect(slot !== undefined && typeof slot === "object" ? slot.values[0] : slot).toBe(12.5);
  } finally {
    producer.disconnect();
    await q2.close();
    rmSync(replayDir, { recursive: true, force: true });
  }
}, 60_000);
