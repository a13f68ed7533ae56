import { afterEach, describe, expect, test } from "bun:test";
import { createHttpEdge, type HttpEdge } from "../src/api/http/index.ts";
import { type ReadSlot, UNAVAILABLE } from "../src/kv/kv-node.ts";
import { HealthMonitor } from "../src/ops/health-score.ts";
import { AnomalyBuffer, MetricsRegistry, ShedRecorder } from "../src/ops/index.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { releaseAtOnce } from "../src/runtime/index.ts";
import { FeatureServing, LookupService, PushService, QUIVER_PUSH } from "../src/serving/index.ts";
import { MatchService, VectorIndexes } from "../src/vector/index.ts";
import { FakeTimers } from "./support/fake-timers.ts";
import { HungNode } from "./support/hung-node.ts";
import { TestFeed } from "./support/test-feed.ts";

/**
 * Work that never settles (a store broken beyond every timeout: a promise
 * nothing resolves) must neither hold admission slots for good nor leave its
 * client waiting for good. An HTTP request keeps its slot until its handler's
 * promise settles; before, each such request leaked its slot and was never
 * answered: once `limit` of them had come, every lookup and push of every
 * client was refused 503 `overloaded` until a restart.
 *
 * The bounds' timers are fake (test/support/fake-timers.ts): a test fires
 * them, so nothing here waits on real time or depends on the machine's speed.
 */

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const registry = compileRegistry({
  entities: [
    { name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] },
    { name: "claim", joinKeys: [{ name: "claim_id", type: "int64" }] },
  ],
  featureViews: [
    { name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] },
    { name: "claims", entities: ["claim"], features: [{ name: "vec", type: "embedding(4)" }], index: { feature: "vec", M: 8, efConstruction: 32 } },
  ],
});

const lookupBody = { features: ["stats:rate"], entities: [{ driver_id: 1 }, { driver_id: 2 }] };
const feastLookupBody = { features: ["stats:rate"], entities: { driver_id: [1] } };

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

interface Server {
  readonly node: HungNode;
  readonly admission: AdaptiveAdmission;
  readonly metrics: MetricsRegistry;
  readonly timers: FakeTimers;
  readonly edge: HttpEdge;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
}

async function start(limit: number, limits: { lookupTimeoutMs?: number; overdueGraceMs?: number; maxWorkMs?: number } = {}): Promise<Server> {
  const node = new HungNode();
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const holder = new RegistryHolder(registry);
  const lookups = new LookupService(node, () => NOW);
  const pushes = new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW);
  const serving = new FeatureServing(holder, lookups, pushes, { maxRows: 100, maxValues: 100_000 });
  await serving.push({ featureView: "claims", rows: [1, 2, 3].map((id) => ({ claim_id: id, vec: [id, 1, 0, 0] })) }, QUIVER_PUSH);
  const vectors = new VectorIndexes({ store: node, feed: new TestFeed(), metrics, snapshotIntervalMs: 0, embedders: { modelPath: "" } });
  await vectors.start(registry);
  const admission = new AdaptiveAdmission({ fixedLimit: limit, queue: 0 });
  const anomalies = new AnomalyBuffer();
  const timers = new FakeTimers();
  const edge = createHttpEdge({
    registry: holder,
    serving,
    match: new MatchService(vectors, node, lookups, metrics),
    store: node,
    metrics,
    anomalies,
    admission,
    sheds: new ShedRecorder(metrics, anomalies),
    release: releaseAtOnce,
    draining: () => false,
    health: new HealthMonitor(admission),
    limits: { maxBodyBytes: 1 << 20, maxRows: 100, lookupTimeoutMs: 100, ...limits },
    reloadRegistry: async () => registry,
    timers,
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", routes: edge.nativeRoutes, fetch: edge.app.fetch });
  close = async () => {
    server.stop(true);
    await vectors.close();
  };
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = fetch(`http://127.0.0.1:${server.port}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    // Still unanswered when its test ends (a failed run): the server's stop resets it, which is no error of the next test.
    res.catch(() => {});
    return res;
  };
  return { node, admission, metrics, timers, edge, post };
}

/** Waits (on the condition, not a time: `ms` only caps a broken run) until `cond` holds. */
async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; ) {
    if (cond()) return true;
    await Bun.sleep(1);
  }
  return cond();
}

/** Whether `p` has settled yet, read when asked. */
function tracked(p: Promise<unknown>): () => boolean {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

async function overdueCount(s: Server, route: string): Promise<number> {
  const m = (await s.metrics.render()).match(new RegExp(`quiver_http_overdue_work_total\\{route="${route.replace(/\//g, "\\/")}"\\} (\\d+)`));
  return m ? Number(m[1]) : 0;
}

describe("HTTP work that never settles", () => {
  test("lookups over a store that never answers: their slots go back at budget + grace and their clients get a 503 overdue in the route's shape; the server serves again", async () => {
    const s = await start(2, { lookupTimeoutMs: 100, overdueGraceMs: 200 });
    s.node.hung = true;
    const before = performance.now();
    const quiver = s.post("/v1/lookup", lookupBody);
    const feast = s.post("/get-online-features", feastLookupBody, { "x-quiver-timeout-ms": "400" });
    const [quiverAnswered, feastAnswered] = [tracked(quiver), tracked(feast)];
    expect(await until(() => s.node.reads === 2)).toBe(true);
    const after = performance.now();
    // Both slots are held by work that never ends: another client is refused.
    expect(s.admission.snapshot().inFlight).toBe(2);
    expect((await s.post("/v1/lookup", lookupBody)).status).toBe(503);
    // One timer for the edge, armed at the soonest bound: a lookup's budget (the header's, else the default) plus the grace.
    expect(s.timers.pending).toHaveLength(1);
    const first = s.timers.pending[0]!;
    expect(first).toBeGreaterThanOrEqual(before + 300);
    expect(first).toBeLessThanOrEqual(after + 300);
    // Not answered while a third client's request went there and back: only the bound answers them.
    expect(quiverAnswered()).toBe(false);

    s.timers.fire(first);
    const q = await quiver;
    expect(q.status).toBe(503);
    expect(q.headers.get("retry-after")).toBe("1");
    expect(await q.json()).toEqual({ error: { code: "overdue", message: expect.stringContaining("retry") } });
    expect(s.admission.snapshot().inFlight).toBe(1);
    expect(feastAnswered()).toBe(false);
    // The timer is armed again, at the other lookup's bound.
    const second = s.timers.pending[0]!;
    expect(second).toBeGreaterThanOrEqual(before + 600);
    expect(second).toBeLessThanOrEqual(after + 600);

    s.timers.fire(second);
    const f = await feast;
    expect(f.status).toBe(503);
    expect(f.headers.get("retry-after")).toBe("1");
    expect(await f.json()).toEqual({ error: expect.stringContaining("retry"), status_code: 503 });
    expect(s.admission.snapshot().inFlight).toBe(0);
    expect(await overdueCount(s, "/v1/lookup")).toBe(1);
    expect(await overdueCount(s, "/get-online-features")).toBe(1);

    s.node.hung = false;
    expect((await s.post("/v1/lookup", lookupBody)).status).toBe(200);
    expect((await s.post("/get-online-features", feastLookupBody)).status).toBe(200);
  });

  test("pushes whose writes never end (/v1/push, /push, /write-to-online-store): slots back and 503 overdue at the work bound", async () => {
    const s = await start(3, { maxWorkMs: 5000 });
    s.node.hung = true;
    const before = performance.now();
    const answers = [
      s.post("/v1/push", { featureView: "stats", rows: [{ driver_id: 1, rate: 0.5 }] }),
      s.post("/push", { push_source_name: "stats", df: { driver_id: [1], rate: [0.5] } }),
      s.post("/write-to-online-store", { feature_view_name: "stats", df: { driver_id: [2], rate: [0.5] } }),
    ];
    expect(await until(() => s.node.writes === 3)).toBe(true);
    const after = performance.now();
    expect(s.admission.snapshot().inFlight).toBe(3);
    expect(s.timers.pending).toHaveLength(1);
    expect(s.timers.pending[0]).toBeGreaterThanOrEqual(before + 5000);
    expect(s.timers.pending[0]).toBeLessThanOrEqual(after + 5000);
    s.timers.fire();
    const [v1, push, write] = await Promise.all(answers);
    expect(v1!.status).toBe(503);
    expect(await v1!.json()).toMatchObject({ error: { code: "overdue" } });
    for (const res of [push!, write!]) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(await res.json()).toEqual({ error: expect.any(String), status_code: 503 });
    }
    expect(s.admission.snapshot().inFlight).toBe(0);
    for (const route of ["/v1/push", "/push", "/write-to-online-store"]) expect(await overdueCount(s, route)).toBe(1);
    s.node.hung = false;
    expect((await s.post("/v1/push", { featureView: "stats", rows: [{ driver_id: 1, rate: 0.5 }] })).status).toBe(200);
  });

  test("a match whose store read never ends is answered 503 overdue at the work bound, not left waiting", async () => {
    const s = await start(2, { maxWorkMs: 5000 });
    s.node.hung = true;
    const answer = s.post("/v1/match", { view: "claims", entity: { claim_id: 1 }, k: 2 });
    const answered = tracked(answer);
    expect(await until(() => s.node.reads === 1)).toBe(true);
    const before = performance.now();
    // Another client's request there and back (a match holds a slot, as gRPC's Match does: the limit of 2 leaves one).
    expect(s.admission.snapshot().inFlight).toBe(1);
    expect((await s.post("/v1/match", { view: "claims", vector: [1, 1, 0, 0], k: 1 })).status).toBe(200);
    expect(answered()).toBe(false);
    expect(s.timers.pending).toHaveLength(1);
    expect(s.timers.pending[0]).toBeLessThanOrEqual(before + 5000);
    s.timers.fire();
    const res = await answer;
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(await res.json()).toMatchObject({ error: { code: "overdue" } });
    expect(await overdueCount(s, "/v1/match")).toBe(1);
    expect(s.admission.snapshot().inFlight).toBe(0);
  });

  test("storage that answers within the bound is answered as before: slow reads give UNAVAILABLE rows by the budget, and nothing is overdue", async () => {
    const s = await start(2, { lookupTimeoutMs: 100 });
    // A slow shard as the resilience layer makes it: its read ends at the lookup's deadline, its rows UNAVAILABLE.
    let answer: (() => void) | undefined;
    s.node.getMany = (keys, ctx) =>
      new Promise<ReadSlot[]>((resolve) => {
        answer = () => {
          (ctx?.degraded as string[] | undefined)?.push("hung");
          resolve(keys.map(() => UNAVAILABLE));
        };
      });
    const pending = s.post("/v1/lookup", lookupBody);
    expect(await until(() => answer !== undefined)).toBe(true);
    expect(s.timers.pending).toHaveLength(1);
    answer!();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.headers.get("x-quiver-degraded")).toBe("hung");
    expect(((await res.json()) as { rows: { statuses: string[]; values: number[] }[] }).rows[0]).toMatchObject({ statuses: ["UNAVAILABLE"], values: [0.25] });
    expect(s.admission.snapshot().inFlight).toBe(0);
    // Its bound passing changes nothing now.
    s.timers.fire();
    expect(await s.metrics.render()).not.toContain("quiver_http_overdue_work_total{");
  });

  test("an answer from memory arms no bound", async () => {
    const s = await start(2);
    s.node.getManyNow = (keys) => keys.map(() => undefined);
    for (const [path, body] of [
      ["/v1/lookup", lookupBody],
      ["/get-online-features", feastLookupBody],
    ] as const) {
      expect((await s.post(path, body)).status).toBe(200);
    }
    expect(s.timers.armedTotal).toBe(0);
  });
});
