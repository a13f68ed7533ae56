import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { loadSourcesFile, openPublisher, type StreamPublisher } from "../src/ingest/index.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A registry reload under running streaming writers (a real redis-server):
 * the writers follow it (a bumped version is written where lookups read it),
 * and a reload that would break their mappings is refused whole.
 */
const dir = mkdtempSync(join(tmpdir(), "quiver-ingest-reload-"));
const registryPath = join(dir, "registry.yaml");
const sourcesPath = join(dir, "sources.yaml");
let example: string;
let redis: RedisProcess;
let publisher: StreamPublisher;
let q: Quiver;

beforeAll(async () => {
  redis = await startRedis();
  example = await Bun.file("src/registry/example-registry.yaml").text();
  writeFileSync(registryPath, example);
  // The example's Redis source alone, pointed at this test's server.
  const sources = await Bun.file("src/ingest/example-sources.yaml").text();
  writeFileSync(sourcesPath, sources.slice(0, sources.indexOf("  # The wallet service")).replace("redis://127.0.0.1:6379", `redis://${redis.address}`));
  q = await buildQuiver(loadConfig(["--registry", registryPath, "--sources", sourcesPath, "--demo-entities", "0"], {}));
  publisher = await openPublisher((await loadSourcesFile(sourcesPath, q.registry.current))[0]!);
}, 60_000);

afterAll(async () => {
  await publisher?.close();
  await q?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

let sent = 0;
async function pay(customer: string, cents: number): Promise<void> {
  sent++;
  const event = { event_id: `e${sent}`, customer: { id: customer }, ts: Date.now() - 1000 + sent, amount_cents: cents, txn_count: 1, chargeback: 0, devices: [] };
  await publisher.publish([new TextEncoder().encode(JSON.stringify(event))]);
  await eventually(`event ${sent} written`, () => q.ingest!.status()[0]!.written === sent);
}

async function spend(customer: string): Promise<{ value: unknown; status: string }> {
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: ["fraud_signals:spend_1h"], entities: [{ customer_id: customer }] }),
  });
  const row = ((await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]!;
  return { value: row.values[0], status: row.statuses[0]! };
}

const reload = () => q.http.app.request("/admin/registry/reload", { method: "POST" });

test("after a reload that bumps a view's version, streamed events are written under the new version, where lookups read", async () => {
  await pay("c1", 1250);
  expect(await spend("c1")).toEqual({ value: 12.5, status: "PRESENT" });

  writeFileSync(registryPath, example.replace(/(name: fraud_signals[\s\S]*?version: )2/, "$13"));
  expect((await reload()).status).toBe(200);
  expect(q.registry.current.views.get("fraud_signals")!.version).toBe(3);
  expect(await spend("c1")).toEqual({ value: 0, status: "NOT_FOUND" });

  await pay("c1", 4000);
  expect(await spend("c1")).toEqual({ value: 40, status: "PRESENT" });
});

test("a reload that drops a view or feature the streaming writers map onto is refused, naming the mapping; nothing changes", async () => {
  const before = q.registry.current.digest;
  // device_ids gone from fraud_signals (under a new version, so the layout rule allows it).
  const dropped = example.replace(/(name: fraud_signals[\s\S]*?version: )2/, "$14").replace('      - { name: device_ids, type: "string[]" }\n', "");
  expect(dropped).not.toContain("device_ids");
  writeFileSync(registryPath, dropped);
  const res = await reload();
  expect(res.status).toBe(400);
  const error = ((await res.json()) as { error: { code: string; path: string; message: string } }).error;
  expect(error.code).toBe("incompatible_registry");
  expect(error.path).toBe("sources[0].mappings[0].features.device_ids");
  expect(error.message).toContain(`the streaming writers map onto it from ${sourcesPath}`);
  expect(q.registry.current.digest).toBe(before);

  await pay("c1", 7000);
  expect(await spend("c1")).toEqual({ value: 70, status: "PRESENT" });
});
