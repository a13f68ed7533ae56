import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type RunOptions, runOnce } from "../loadtest/run.ts";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";

/**
 * CPU-bound overload on the default server (embedded store): every lookup is
 * answered within one event-loop turn, so the concurrency limit never binds and
 * only the loop-turn signal can shed (src/resilience/loop-pressure.ts).
 *
 * Overload here is by construction, not by the machine's speed: 256
 * connections each keep a 100-entity lookup in flight (a closed loop), so a
 * loop turn holds up to 256 requests of ~0.3 ms or more (~75 ms, far above the
 * 5 ms target and the 100 ms needed to call it overload); a slower or busier
 * machine only makes the turns longer. What is asserted is the behaviour
 * (answers are 200 with real values or a well-formed 503, the shedding shows
 * in metrics, anomalies and the health score, the process recovers at once,
 * memory stays bounded); the goodput and latency figures are the bench's
 * (`npm run bench -- resilience`).
 */

let server: QuiverProcess;
const ENTITIES = 20_000;

beforeAll(async () => {
  server = await startQuiver(["--demo-entities", String(ENTITIES), "--grpc-port", "-1"]);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const batchBody = JSON.stringify({
  features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"],
  entities: Array.from({ length: 100 }, (_, i) => ({ driver_id: 1001 + i })),
});

test("256 connections of 100-entity lookups: the excess gets a well-formed 503 at once, admitted lookups answer in full, ops see it while it lasts, and the process recovers at once", async () => {
  const rssBefore = rssMb(server.proc.pid);
  const options: RunOptions = {
    scenario: "lookup",
    target: new URL(server.url),
    mode: "closed",
    rate: 0,
    connections: 256,
    durationMs: 3000,
    warmupMs: 0,
    timeoutMs: 10_000,
    gcPaceMs: 0,
    keys: "uniform",
    entities: ENTITIES,
    seed: "1",
    batch: 100,
    writeRatio: 0,
    view: "driver_hourly_stats",
    features: undefined,
    path: "/healthz",
    maxRequests: 200_000,
    label: undefined,
  };
  const load = runOnce(options);
  // While the load runs: what ops see, and one refused answer in full.
  let overloadedSeen = 0;
  let lowestScore = 100;
  let turnMsSeen = 0;
  let budgetMsSeen = 0;
  let budgetMsLowest = Number.POSITIVE_INFINITY;
  let refused: Response | undefined;
  const started = performance.now();
  await Bun.sleep(500);
  while (performance.now() - started < 2600) {
    overloadedSeen = Math.max(overloadedSeen, await metric("quiver_admission_cpu_overloaded"));
    turnMsSeen = Math.max(turnMsSeen, (await metric("quiver_event_loop_turn_seconds")) * 1000);
    const budgetMs = (await metric("quiver_admission_turn_budget_seconds")) * 1000;
    budgetMsSeen = Math.max(budgetMsSeen, budgetMs);
    budgetMsLowest = Math.min(budgetMsLowest, budgetMs);
    const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { health: { score: number } };
    lowestScore = Math.min(lowestScore, ready.health.score);
    if (refused === undefined) {
      const res = await fetch(`${server.url}/v1/lookup`, { method: "POST", headers: { "content-type": "application/json" }, body: batchBody });
      if (res.status === 503) refused = res;
      else await res.arrayBuffer();
    }
    await Bun.sleep(100);
  }
  const r = await load;
  const figures = { statusCounts: r.statusCounts, errorsByKind: r.errorsByKind, rate: r.rate.achieved, latencyByStatusMs: r.latencyByStatusMs, overloadedSeen, lowestScore, turnMsSeen, budgetMsSeen };
  console.log(JSON.stringify({ cpuOverload: figures }));

  // Every answer is a 200 or a 503: no resets, timeouts or other statuses.
  expect(Object.keys(r.statusCounts).sort()).toEqual(["200", "503"]);
  expect(r.errorsByKind["http_503"]).toBe(r.statusCounts["503"]);
  expect(Object.keys(r.errorsByKind)).toEqual(["http_503"]);
  expect(r.statusCounts["200"]!).toBeGreaterThan(0);
  expect(r.statusCounts["503"]!).toBeGreaterThan(0);
  // Ops saw it while it lasted: the overload gauge and a lower health score (shed answers count as errors).
  expect(overloadedSeen).toBe(1);
  expect(lowestScore).toBeLessThan(100);
  // The turn budget is exported and stays between its floor and the target. Whether it grows here depends on how
  // fast this in-process client resends (in the full suite it ran at 10-15k req/s against 22-25k alone, and the
  // budget grew in some runs, not in others), so growth is the simulation's to show (turn-budget.test.ts).
  expect(budgetMsLowest).toBeGreaterThanOrEqual(0.75); // the default floor (--overload-turn-ms)
  expect(budgetMsSeen).toBeLessThanOrEqual(5);

  // A refused lookup: 503, Retry-After, code overloaded and a message that says why.
  expect(refused).toBeDefined();
  expect(refused!.headers.get("retry-after")).toBe("1");
  const body = (await refused!.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe("overloaded");
  expect(body.error.message).toContain("waiting for its CPU");
  const anomalies = (await (await fetch(`${server.url}/admin/anomalies?kind=shed`)).json()) as { anomalies: { subject: string; reason: string; count: number }[] };
  expect(anomalies.anomalies.some((a) => a.subject === "/v1/lookup" && a.reason === "cpu_overload" && a.count > 0)).toBe(true);
  const shedMetrics = await (await fetch(`${server.url}/metrics`)).text();
  expect(shedMetrics).toMatch(/quiver_admission_shed_total\{route="\/v1\/lookup",reason="cpu_overload"\} [1-9]/);

  // Recovered at once: the next lookup is served in full, and the overload ends within its 100 ms rule. While the
  // episode lasts, a request that waited in its socket beyond the target is still refused: a stall of the server's
  // loop right then (a collection after the load, the process descheduled on a busy machine) refused this lookup
  // in one full-suite run of 12-05. Then the episode must be over within the rule and the next lookup served.
  const lookup = () => fetch(`${server.url}/v1/lookup`, { method: "POST", headers: { "content-type": "application/json" }, body: batchBody });
  let after = await lookup();
  if (after.status === 503) {
    console.log(JSON.stringify({ refusedAfterLoad: await after.text(), loopTurnMs: (await metric("quiver_event_loop_turn_seconds")) * 1000 }));
    await Bun.sleep(200);
    expect(await metric("quiver_admission_cpu_overloaded")).toBe(0);
    after = await lookup();
  }
  expect(after.status).toBe(200);
  const rows = ((await after.json()) as { rows: { statuses: string[] }[] }).rows;
  expect(rows.length).toBe(100);
  expect(rows.every((row) => row.statuses.every((s) => s === "PRESENT" || s === "NULL_VALUE"))).toBe(true);
  await Bun.sleep(200);
  expect(await metric("quiver_admission_cpu_overloaded")).toBe(0);
  // Memory stays bounded: refused requests leave nothing behind.
  expect(rssMb(server.proc.pid) - rssBefore).toBeLessThan(200);
}, 60_000);
