import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A multi-shard push one shard refused before anything was sent (its write
 * breaker open, its primary stopped) over real redis-server processes: shards
 * alpha and beta, L2 and the change feed on a third Redis, three pods wired by
 * buildQuiver in this process. The push answers 503 + Retry-After; what it
 * wrote (beta's share) replaces the cached copies on every pod, and what was
 * refused (alpha's share) changed nothing, so every pod goes on serving its
 * keys from L1 and L2 while alpha is down. Until 12-07 the refused share was
 * floored in L2 and published like the rest: every pod answered its keys
 * UNAVAILABLE (defaults) until a retry landed or the floors' windows ended.
 */

const VIEW = "driver_hourly_stats";
const FEATURE = `${VIEW}:conv_rate`;

let alpha: RedisProcess;
let beta: RedisProcess;
let l2: RedisProcess;
let dir: string;
let a: Quiver;
let b: Quiver;
let c: Quiver;

async function call(q: Quiver, path: string, body: unknown, timeoutMs = 2000): Promise<Response> {
  return q.http.app.request(path, { method: "POST", headers: { "content-type": "application/json", "x-quiver-timeout-ms": String(timeoutMs) }, body: JSON.stringify(body) });
}

async function push(q: Quiver, rows: ReadonlyArray<{ id: number; rate: number; ts: number }>): Promise<{ status: number; code: string | undefined; retryAfter: string | null }> {
  const res = await call(q, "/v1/push", { featureView: VIEW, rows: rows.map((r) => ({ driver_id: r.id, event_timestamp: r.ts, conv_rate: r.rate, city: "Porto" })) });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code, retryAfter: res.headers.get("retry-after") };
}

/** Each driver's conv_rate and status on `q` (a 500 ms budget: a read of the stopped shard gives up within it). */
async function rates(q: Quiver, ids: readonly number[]): Promise<Array<[unknown, string]>> {
  const res = await call(q, "/v1/lookup", { features: [FEATURE], entities: { driver_id: ids } }, 500);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] };
  return body.rows.map((r) => [r.values[0], r.statuses[0]!]);
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await Bun.sleep(20);
  }
  return false;
}

describe("a multi-shard push one shard refused before sending anything", () => {
  beforeAll(async () => {
    [alpha, beta, l2] = await Promise.all([startRedis(), startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), "quiver-refused-write-"));
    writeFileSync(
      join(dir, "topology.yaml"),
      [
        "defaults:",
        "  breakerFailures: 2", // two failed pushes open a shard's write breaker
        "  breakerWindowMs: 60000",
        "  breakerOpenMs: 600000", // no trial during the test
        "  writeRetries: 0",
        "  failoverWindowMs: 100",
        "  writeTimeoutMs: 300",
        "  writeBackoffMs: 50",
        "shards:",
        `  - { name: alpha, primary: "${alpha.address}", writeAcks: 0 }`,
        `  - { name: beta, primary: "${beta.address}", writeAcks: 0 }`,
        "cache:",
        `  l2: "${l2.address}"`,
        "  l2Timeout: 250ms",
        "",
      ].join("\n"),
    );
    const args = ["--topology", join(dir, "topology.yaml"), "--demo-entities", "0", "--grpc-port", "-1"];
    [a, b, c] = await Promise.all([buildQuiver(loadConfig(args, {}), { podId: "pod-a" }), buildQuiver(loadConfig(args, {}), { podId: "pod-b" }), buildQuiver(loadConfig(args, {}), { podId: "pod-c" })]);
    for (const q of [a, b, c]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    alpha?.resume();
    await Promise.allSettled([a?.close(), b?.close(), c?.close()]);
    await Promise.allSettled([alpha?.stop(), beta?.stop(), l2?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("answers 503 + Retry-After; the refused shard's keys stay served from L1 and L2 on every pod while it is down, the written shard's keys are not served stale", async () => {
    const onAlpha: number[] = [];
    const onBeta: number[] = [];
    for (let id = 7001; onAlpha.length < 12 || onBeta.length < 1; id++) (a.store.nodeFor(`x/driver_id=i${id}`).id === "alpha" ? onAlpha : onBeta).push(id);
    const kA = onAlpha[0]!;
    const kB = onBeta[0]!;
    const spare = onAlpha.slice(1);
    const t1 = Date.now() - 60_000;
    expect(await push(a, [{ id: kA, rate: 0.1, ts: t1 }, { id: kB, rate: 0.1, ts: t1 }])).toMatchObject({ status: 200 });
    // Pods A and B hold both rows in L1; the push wrote them to L2 before its 200. Pod C holds nothing yet.
    for (const q of [a, b]) expect(await rates(q, [kA, kB])).toEqual([[0.1, "PRESENT"], [0.1, "PRESENT"]]);

    alpha.pause();
    // Pushes of other alpha keys time out until pod A's write breaker for alpha opens (each may have landed: floored).
    let opened = false;
    for (let i = 0; i < spare.length && !opened; i++) opened = (await push(a, [{ id: spare[i]!, rate: 0.5, ts: t1 }])).code === "shard_breaker_open";
    expect(opened).toBe(true);

    const t2 = t1 + 1000;
    const refused = await push(a, [{ id: kA, rate: 0.2, ts: t2 }, { id: kB, rate: 0.2, ts: t2 }]);
    expect(refused.status).toBe(503);
    expect(refused.code).toBe("shard_breaker_open");
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);

    // Beta's share landed and was published: pod B drops its copy and reads the new row (this also says B has heard
    // the push's message on the feed, which named alpha's key too before the fix).
    expect(await waitFor(async () => (await rates(b, [kB]))[0]![0] === 0.2, 10_000)).toBe(true);
    const seen = { a: await rates(a, [kA, kB]), b: await rates(b, [kA, kB]), c: await rates(c, [kA, kB]) };
    console.log(JSON.stringify({ refusedPush: refused, seenWhileAlphaDown: seen }));
    // Alpha's share was refused before anything was sent: A and B answer their L1 copies, C (nothing in L1) L2's.
    // Before the fix all three answered [0, "UNAVAILABLE"]: floors everywhere, and alpha does not answer.
    expect(seen.a).toEqual([[0.1, "PRESENT"], [0.2, "PRESENT"]]);
    expect(seen.b).toEqual([[0.1, "PRESENT"], [0.2, "PRESENT"]]);
    expect(seen.c).toEqual([[0.1, "PRESENT"], [0.2, "PRESENT"]]);
  }, 60_000);
});
