import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Subprocess, spawn } from "bun";
import { withRedis } from "../shards/redis-probe.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { loadRegistryFile } from "../src/registry/index.ts";
import { keyPart } from "../src/serving/index.ts";
import { eventually, shuffle } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * Crash mid-batch, end to end with real processes: a standalone consumer
 * (`src/ingest/cli.ts`) writes half of a batch into a Redis store and is
 * killed with SIGKILL before it acknowledges; a second consumer of the group
 * takes the pending entries over (XAUTOCLAIM). The store must end equal to the
 * last-write-wins state of every key, and the duplicates counted by the second
 * consumer must be exactly the rows the first wrote but never acknowledged.
 */
const ROOT = resolve(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "quiver-ingest-crash-"));
let streams: RedisProcess;
let storeServer: RedisProcess;
const running: Subprocess[] = [];

beforeAll(async () => {
  [streams, storeServer] = await Promise.all([startRedis(), startRedis()]);
}, 60_000);

afterAll(async () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  await Promise.all([streams?.stop(), storeServer?.stop()]);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

function startConsumer(extra: string[]): { proc: Subprocess<"ignore", "pipe", "pipe">; output: () => string } {
  const proc = spawn(
    [process.execPath, "src/ingest/cli.ts", "--sources", join(dir, "sources.yaml"), "--topology", join(dir, "topology.yaml"), "--write-acks", "0", ...extra],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  running.push(proc);
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const chunk of s) out += d.decode(chunk, { stream: true });
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return { proc, output: () => out };
}

function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T");
  } catch {
    return false;
  }
}

test("kill -9 mid-batch: another consumer takes over; no loss, no regression, replays counted as duplicates", async () => {
  writeFileSync(join(dir, "topology.yaml"), `defaults:\n  writeAcks: 0\nshards:\n  - name: s1\n    primary: ${storeServer.address}\n`);
  writeFileSync(
    join(dir, "sources.yaml"),
    `sources:
  - name: crash
    engine: redis
    redis: { url: "redis://${streams.address}", stream: payments, group: quiver, claimIdle: 1000ms }
    batchSize: 50
    mappings:
      - featureView: fraud_signals
        keys: { customer_id: customer }
        eventTime: { path: ts, format: epoch_ms }
        features: { spend_1h: amount, txn_count_1h: seq }
`,
  );
  // 600 events over 40 customers, distinct times per customer, published out of order.
  const base = Date.now() - 600_000;
  const events = Array.from({ length: 600 }, (_, i) => ({ customer: `k${i % 40}`, ts: base + i * 100, amount: i + 0.5, seq: i }));
  shuffle(events, 11);
  const expected = new Map<string, (typeof events)[number]>();
  for (const e of events) if ((expected.get(e.customer)?.ts ?? -1) < e.ts) expected.set(e.customer, e);
  await withRedis(streams.address, async (r) => {
    const p = r.pipeline();
    for (const e of events) p.xadd("payments", "*", "data", JSON.stringify(e));
    await p.exec();
  });

  const first = startConsumer(["--fault-stop-after-writes", "3", "--fault-half-write"]);
  // The consumer writes its fault line and then stops itself: the line is in the pipe by then, but
  // this process may not have read it yet, so wait for both (CI once saw the stop before the line).
  const faultLine = /\((\d+) rows written, not acknowledged\)/;
  await eventually("the first consumer stops mid-batch", () => isStopped(first.proc.pid) && faultLine.test(first.output()), 60_000);
  const written = Number(faultLine.exec(first.output())?.[1]);
  expect(written).toBeGreaterThan(0);
  first.proc.kill("SIGKILL");
  await first.proc.exited;
  const pendingAfterKill = await withRedis(streams.address, async (r) => ((await r.xpending("payments", "quiver")) as [number])[0]);
  expect(pendingAfterKill).toBe(50);

  // Past the claim idle time, so the second consumer's first read takes the dead one's batch over.
  await Bun.sleep(1500);
  const second = startConsumer([]);
  await eventually(
    "the group has nothing left",
    async () => {
      if (!/quiver ingest running/.test(second.output())) return false;
      const groups = await withRedis(streams.address, (r) => r.call("XINFO", "GROUPS", "payments") as Promise<unknown[][]>);
      const g = groups[0]!;
      const field = (name: string) => g[g.indexOf(name) + 1];
      return Number(field("pending")) === 0 && Number(field("lag")) === 0;
    },
    60_000,
  );
  second.proc.kill("SIGTERM");
  expect(await second.proc.exited).toBe(0);
  const stats = JSON.parse(/ingest-stats (.*)/.exec(second.output())![1]!) as Array<{ consumed: number; written: number; duplicate: number; late: number; deadLettered: number }>;
  const s = stats[0]!;
  console.log(`crash test: first consumer wrote ${written} rows of its 3rd batch before kill -9; second consumer: ${JSON.stringify(s)}`);
  expect(s.duplicate).toBe(written);
  expect(s.deadLettered).toBe(0);
  expect(s.consumed).toBe(600 - 100); // two acknowledged batches of 50 were done by the first consumer

  const registry = await loadRegistryFile("src/registry/example-registry.yaml");
  const view = registry.views.get("fraud_signals")!;
  const node = await RedisKvNode.connect({ host: storeServer.host, port: storeServer.port });
  try {
    const customers = [...expected.keys()];
    const rows = await node.getMany(customers.map((c) => view.keyPrefix + keyPart(view.joinKeys[0]!, c, "customer")));
    const spend = view.featureIndex.get("spend_1h")!.index;
    const seq = view.featureIndex.get("txn_count_1h")!.index;
    customers.forEach((c, i) => {
      const row = rows[i] as { ts: number; values: unknown[] };
      const want = expected.get(c)!;
      expect([c, row.ts, row.values[spend], row.values[seq]]).toEqual([c, want.ts, want.amount, want.seq]);
    });
  } finally {
    await node.close();
  }
}, 180_000);
