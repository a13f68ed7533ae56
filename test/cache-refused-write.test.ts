import { describe, expect, test } from "bun:test";
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

interface Rig {
  readonly alpha: RedisProcess;
  readonly a: Quiver;
  readonly b: Quiver;
  readonly c: Quiver;
  close(): Promise<void>;
}

/** Shards alpha and beta, L2 and the feed on a third Redis, three pods; `defaults` are the shards' resilience settings. */
async function rig(defaults: readonly string[]): Promise<Rig> {
  const [alpha, beta, l2] = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const dir = mkdtempSync(join(tmpdir(), "quiver-refused-write-"));
  writeFileSync(
    join(dir, "topology.yaml"),
    [
      "defaults:",
      ...defaults.map((d) => `  ${d}`),
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
  const [a, b, c] = await Promise.all([buildQuiver(loadConfig(args, {}), { podId: "pod-a" }), buildQuiver(loadConfig(args, {}), { podId: "pod-b" }), buildQuiver(loadConfig(args, {}), { podId: "pod-c" })]);
  for (const q of [a, b, c]) expect(await waitFor(() => q.feed.state().connected, 10_000)).toBe(true);
  return {
    alpha,
    a,
    b,
    c,
    async close() {
      await Promise.allSettled([a.close(), b.close(), c.close()]);
      await Promise.allSettled([alpha.stop(), beta.stop(), l2.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Drivers on each shard (by pod A's ring): alpha's first and beta's first are the test's keys, alpha's others spares. */
function drivers(a: Quiver): { kA: number; kB: number; spare: number[] } {
  const onAlpha: number[] = [];
  const onBeta: number[] = [];
  for (let id = 7001; onAlpha.length < 12 || onBeta.length < 1; id++) (a.store.nodeFor(`x/driver_id=i${id}`).id === "alpha" ? onAlpha : onBeta).push(id);
  return { kA: onAlpha[0]!, kB: onBeta[0]!, spare: onAlpha.slice(1) };
}

/**
 * Pods A and B cache both keys at 0.1; `refuse` takes alpha down so that pod A refuses its writes before sending
 * them; a push of both keys at 0.2 then answers 503 with `code`. Answers what each pod serves afterwards, alpha still down.
 */
async function refusedPush(r: Rig, refuse: (spare: number[], ts: number) => Promise<void>, code: string): Promise<Record<"a" | "b" | "c", Array<[unknown, string]>>> {
  const { a, b, c } = r;
  const { kA, kB, spare } = drivers(a);
  const t1 = Date.now() - 60_000;
  expect(await push(a, [{ id: kA, rate: 0.1, ts: t1 }, { id: kB, rate: 0.1, ts: t1 }])).toMatchObject({ status: 200 });
  // Pods A and B hold both rows in L1; the push wrote them to L2 before its 200. Pod C holds nothing yet.
  for (const q of [a, b]) expect(await rates(q, [kA, kB])).toEqual([[0.1, "PRESENT"], [0.1, "PRESENT"]]);
  await refuse(spare, t1);
  const t2 = t1 + 1000;
  const refused = await push(a, [{ id: kA, rate: 0.2, ts: t2 }, { id: kB, rate: 0.2, ts: t2 }]);
  expect(refused.status).toBe(503);
  expect(refused.code).toBe(code);
  expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
  // Beta's share landed and was published: pod B drops its copy and reads the new row (this also says B has heard
  // the push's message on the feed, which named alpha's key too before the fix).
  expect(await waitFor(async () => (await rates(b, [kB]))[0]![0] === 0.2, 10_000)).toBe(true);
  const seen = { a: await rates(a, [kA, kB]), b: await rates(b, [kA, kB]), c: await rates(c, [kA, kB]) };
  console.log(JSON.stringify({ refusedPush: refused, seenWhileAlphaDown: seen }));
  return seen;
}

/** Alpha's share was refused before anything was sent: A and B answer their L1 copies, C (nothing in L1) L2's; beta's new row everywhere. Before the fix all three answered alpha's key [0, "UNAVAILABLE"]: floors everywhere, and alpha does not answer. */
const SERVED: Record<"a" | "b" | "c", Array<[unknown, string]>> = { a: [[0.1, "PRESENT"], [0.2, "PRESENT"]], b: [[0.1, "PRESENT"], [0.2, "PRESENT"]], c: [[0.1, "PRESENT"], [0.2, "PRESENT"]] };

describe("a multi-shard push one shard refused before sending anything: 503 + Retry-After; that shard's keys stay served from L1 and L2 on every pod while it is down, the written shard's keys are not served stale", () => {
  test("refused by pod A's open write breaker (alpha hung, SIGSTOP)", async () => {
    const r = await rig(["breakerFailures: 2"]); // two failed pushes open a shard's write breaker
    try {
      const seen = await refusedPush(
        r,
        async (spare, ts) => {
          r.alpha.pause();
          // Pushes of other alpha keys time out until pod A's write breaker for alpha opens (each may have landed: floored).
          let opened = false;
          for (let i = 0; i < spare.length && !opened; i++) opened = (await push(r.a, [{ id: spare[i]!, rate: 0.5, ts }])).code === "shard_breaker_open";
          expect(opened).toBe(true);
        },
        "shard_breaker_open",
      );
      expect(seen).toEqual(SERVED);
    } finally {
      r.alpha.resume();
      await r.close();
    }
  }, 60_000);

  test("refused because alpha's connection is down (alpha stopped), its breaker still closed", async () => {
    const r = await rig(["breakerFailures: 1000"]);
    try {
      const seen = await refusedPush(
        r,
        async (spare, ts) => {
          await r.alpha.stop();
          // The server closed its connections as it stopped: a push of another alpha key fails, and from then on pod
          // A's client is reconnecting, so alpha's writes are refused without being sent (the breaker stays closed).
          expect(await push(r.a, [{ id: spare[0]!, rate: 0.5, ts }])).toMatchObject({ status: 503, code: "shard_unavailable" });
        },
        "shard_unavailable",
      );
      expect(seen).toEqual(SERVED);
    } finally {
      await r.close();
    }
  }, 60_000);
});
