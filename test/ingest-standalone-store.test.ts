import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { withRedis } from "../shards/redis-probe.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A standalone writer (`npm run ingest`) given neither --topology nor
 * --data-dir writes into a store in its own memory. Without --port nothing
 * reads that store, and it is gone when the process exits, yet every event
 * was acknowledged to the engine: consumed for good, written nowhere (20 of
 * 20 here); run beside a server of the same consumer group, it takes its
 * share of the stream from the server. It is refused at start instead,
 * before it joins the group.
 */
const ROOT = resolve(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "quiver-ingest-standalone-"));
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
  writeFileSync(
    join(dir, "sources.yaml"),
    `sources:
  - name: lone
    engine: redis
    redis: { url: "redis://${redis.address}", stream: payments, group: quiver }
    mappings:
      - featureView: fraud_signals
        keys: { customer_id: customer }
        eventTime: { path: ts, format: epoch_ms }
        features: { spend_1h: amount }
`,
  );
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("a standalone writer with no store others read (no --topology, no --data-dir, no --port) is refused at start and consumes nothing", async () => {
  await withRedis(redis.address, async (r) => {
    const p = r.pipeline();
    for (let i = 0; i < 20; i++) p.xadd("payments", "*", "data", JSON.stringify({ customer: `c${i}`, amount: i, ts: Date.now() - 1000 }));
    await p.exec();
  });
  const proc = Bun.spawn([process.execPath, "src/ingest/cli.ts", "--sources", join(dir, "sources.yaml")], { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  // Before the fix it ran (and acknowledged all 20 into its own memory): stop it after a while either way.
  const timer = setTimeout(() => proc.kill("SIGTERM"), 5000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  expect({ code, out }).toMatchObject({ code: 1, out: "" });
  expect(err).toContain("quiver ingest: cannot start: no store shared with anything that reads it");
  // Nothing was taken from the stream: no group made, every entry still there for a writer with a real store.
  const groups = await withRedis(redis.address, (r) => r.call("XINFO", "GROUPS", "payments") as Promise<unknown[]>);
  expect(groups).toEqual([]);
}, 60_000);
