import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createGrpcEdge, type GrpcEdge } from "../src/api/grpc/index.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { type Clients, connect, grpc, unaryCall } from "./support/grpc-client.ts";
import { HungNode } from "./support/hung-node.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * Work that never settles (a store broken beyond every timeout: a promise
 * nothing resolves) must not hold admission slots for good. A gRPC call keeps
 * its slot past its answer while its work goes on (call.ts), so before, each
 * such call leaked its slot: once `limit` of them had come, every lookup and
 * push of every client was refused RESOURCE_EXHAUSTED until a restart, and a
 * call without a deadline was never answered at all.
 */

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] }],
});

const lookup = { features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: ["1", "2"] }] };
const push = { feature_view: "stats", rows: [{ values: { driver_id: { int64_val: "1" }, rate: { double_val: 0.5 } } }] };

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function start(limit: number, limits: { lookupTimeoutMs?: number; overdueGraceMs?: number; maxWorkMs?: number } = {}) {
  const node = new HungNode();
  const pushes = new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW);
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node, () => NOW), pushes, { maxRows: 100, maxValues: 100_000 });
  const admission = new AdaptiveAdmission({ fixedLimit: limit, queue: 0 });
  const metrics = new MetricsRegistry();
  const edge: GrpcEdge = createGrpcEdge({
    serving,
    metrics,
    ready: async () => true,
    admission,
    limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, ...limits },
  });
  const clients: Clients = connect(`127.0.0.1:${await edge.listen("127.0.0.1", 0)}`);
  close = async () => {
    clients.close();
    await edge.drain(1000);
  };
  return { node, admission, metrics, clients };
}

/** Polls `cond` every 20 ms for up to `ms`. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; ) {
    if (cond()) return true;
    await Bun.sleep(20);
  }
  return cond();
}

describe("work that never settles", () => {
  test("a lookup's slot goes back once its budget is long past, and the server serves again", async () => {
    const { node, admission, metrics, clients } = await start(2, { lookupTimeoutMs: 100, overdueGraceMs: 200 });
    node.hung = true;
    // Answered at their deadlines; their slots were held by work that never ends.
    for (let i = 0; i < 2; i++) expect((await unaryCall(clients.quiver, "Lookup", lookup, { deadlineMs: 100 })).error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    node.hung = false;
    // The budget (100 ms) and the grace (200 ms) pass: the slots are given back, not held for good.
    expect(await until(() => admission.snapshot().inFlight === 0, 5000)).toBe(true);
    const after = await unaryCall(clients.quiver, "Lookup", lookup);
    expect(after.error).toBeUndefined();
    expect(await metrics.render()).toContain('quiver_grpc_overdue_work_total{method="quiver.v1.FeatureService/Lookup"} 2');
  });

  test("a lookup without a deadline is answered UNAVAILABLE once its budget is long past, not left waiting for good", async () => {
    const { node, admission, clients } = await start(4, { lookupTimeoutMs: 100, overdueGraceMs: 200 });
    node.hung = true;
    const started = performance.now();
    const [q, f] = await Promise.all([
      unaryCall(clients.quiver, "Lookup", lookup),
      unaryCall(clients.feast, "GetOnlineFeatures", { features: { val: ["stats:rate"] }, entities: { driver_id: { val: [{ int64_val: "1" }] } } }),
    ]);
    for (const r of [q, f]) {
      expect(r.error?.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.error?.metadata.get("x-quiver-error-code")[0]).toBe("overdue");
      expect(r.error?.metadata.get("x-quiver-retryable")[0]).toBe("true");
    }
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(admission.snapshot().inFlight).toBe(0);
  });

  test("a push whose write never ends gives its slot back at the work bound; the other clients' lookups are served again", async () => {
    const { node, admission, clients } = await start(1, { maxWorkMs: 300 });
    node.hung = true;
    const answered = await unaryCall(clients.quiver, "Push", push);
    expect(answered.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(answered.error?.metadata.get("x-quiver-error-code")[0]).toBe("overdue");
    expect(node.writes).toBe(1);
    expect(admission.snapshot().inFlight).toBe(0);
    node.hung = false;
    expect((await unaryCall(clients.quiver, "Lookup", lookup)).error).toBeUndefined();
  });

  test("a LookupStream message whose lookup never ends gives its slot back and answers UNAVAILABLE with its id; the stream goes on", async () => {
    const { node, admission, clients } = await start(1, { lookupTimeoutMs: 100, overdueGraceMs: 200 });
    node.hung = true;
    const stream = (clients.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: { status: number; code: string } | null }> }).LookupStream();
    const answers: { id: string; error: { status: number; code: string } | null }[] = [];
    stream.on("data", (a) => answers.push(a));
    stream.on("error", () => {});
    stream.write({ ...lookup, id: "5" });
    expect(await until(() => answers.length === 1, 5000)).toBe(true);
    expect(answers[0]).toMatchObject({ id: "5", error: { status: grpc.status.UNAVAILABLE, code: "overdue" } });
    expect(admission.snapshot().inFlight).toBe(0);
    node.hung = false;
    stream.write({ ...lookup, id: "6" });
    expect(await until(() => answers.length === 2, 5000)).toBe(true);
    expect(answers[1]).toMatchObject({ id: "6", error: null });
    stream.end();
  });

  test("work that ends late, but within its bound, keeps its slot until it ends, as before", async () => {
    const { node, admission, metrics, clients } = await start(1, { lookupTimeoutMs: 100, maxWorkMs: 30_000 });
    // A push whose write takes 400 ms, its caller gone at 100 ms: the slot is held by the write, not given back at the answer.
    let finish = () => {};
    const write = node.putMany.bind(node);
    node.putMany = (entries, signal) =>
      new Promise<void>((resolve) => {
        finish = resolve;
      }).then(() => write(entries, signal));
    const answered = await unaryCall(clients.quiver, "Push", push, { deadlineMs: 100 });
    expect(answered.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(admission.snapshot().inFlight).toBe(1);
    finish();
    expect(await until(() => admission.snapshot().inFlight === 0, 5000)).toBe(true);
    expect(await metrics.render()).not.toContain("quiver_grpc_overdue_work_total{");
  });
});
