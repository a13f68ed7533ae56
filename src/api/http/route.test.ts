import { expect, test } from "bun:test";
import { MetricsRegistry } from "../../ops/metrics.ts";
import { AdaptiveAdmission } from "../../resilience/admission.ts";
import { CORKED_BYTES, TurnBatch } from "../../runtime/index.ts";
import { deadlineAfter, lookupBudget, waitedForAdmission } from "./deadline.ts";
import { FakeTimers } from "../../../test/support/fake-timers.ts";
import { OverdueWatch } from "../work-bounds.ts";
import { encodedAnswer, errorResponse } from "./responses.ts";
import { routeMetrics, serveRoute } from "./route.ts";

test("a request that waited in the admission queue has spent that wait from its lookup budget, as a gRPC deadline has", async () => {
  const admission = new AdaptiveAdmission({ fixedLimit: 1, queue: 4, queueTimeoutMs: 1000 });
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let first = true;
  // The first request holds the only slot until released; each answers with what is left of a 50 ms budget.
  const handler = async (req: Request): Promise<Response> => {
    if (first) {
      first = false;
      await held;
    }
    const leftMs = deadlineAfter(req, lookupBudget(req, 50)) - performance.now();
    return new Response(String(leftMs));
  };
  const route = serveRoute(routeMetrics(new MetricsRegistry({ defaultMetrics: false })), "/t", handler, () => new Response("error", { status: 500 }), {
    gate: { admission, shed: () => new Response("shed", { status: 503 }) },
  });
  const request = () => new Request("http://q/t", { method: "POST", body: "{}" });
  const holding = route(request());
  const queued = route(request());
  expect(admission.snapshot().queued).toBe(1);
  await Bun.sleep(40);
  release();
  await holding;
  // Queued for at least 40 ms: at most 10 of the 50 ms are left (before, the budget restarted on admission).
  expect(Number(await (await queued).text())).toBeLessThanOrEqual(10);
  // Admitted at once: the whole budget.
  expect(Number(await (await route(request())).text())).toBeGreaterThan(25);
});

test("a request that waited for admission is answered late: a large answer from memory goes out as a stream, not uncorked", async () => {
  const admission = new AdaptiveAdmission({ fixedLimit: 1, queue: 4, queueTimeoutMs: 1000 });
  const big = new TextEncoder().encode(JSON.stringify({ rows: Array.from({ length: 3000 }, (_, i) => ({ id: i })) }));
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let first = true;
  // The first request holds the only slot; the others answer from memory at once, as the embedded store does.
  const handler = (req: Request): Response | Promise<Response> => {
    if (first) {
      first = false;
      return held.then(() => encodedAnswer(big, false, undefined, true));
    }
    return encodedAnswer(big, false, undefined, waitedForAdmission(req));
  };
  const route = serveRoute(routeMetrics(new MetricsRegistry({ defaultMetrics: false })), "/t", handler, () => new Response("error", { status: 500 }), {
    gate: { admission, shed: () => new Response("shed", { status: 503 }) },
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: route });
  try {
    const url = `http://127.0.0.1:${server.port}/t`;
    const holding = fetch(url, { method: "POST", body: "{}" });
    while (admission.snapshot().inFlight < 1) await Bun.sleep(1);
    const queued = fetch(url, { method: "POST", body: "{}" });
    while (admission.snapshot().queued < 1) await Bun.sleep(1);
    release();
    for (const res of [await holding, await queued]) {
      expect(res.status).toBe(200);
      expect(res.headers.get("transfer-encoding")).toBe("chunked");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(big);
    }
    // Admitted at once: answered inside its callback, with its length.
    const direct = await fetch(url, { method: "POST", body: "{}" });
    expect(direct.headers.get("content-length")).toBe(String(big.length));
    expect(new Uint8Array(await direct.arrayBuffer())).toEqual(big);
  } finally {
    server.stop(true);
  }
});

test("answers of one loop turn after its first are held for the turn's batch, once admission has heard them end; an answer that must leave from its callback and a refusal are not", async () => {
  const turnEnds: (() => void)[] = [];
  const batch = new TurnBatch<Response>({ max: 16, atOnce: 1 }, (fn) => turnEnds.push(fn));
  const admission = new AdaptiveAdmission({ fixedLimit: 1, queue: 0 });
  const small = new TextEncoder().encode('{"rows":[]}');
  const large = new Uint8Array(CORKED_BYTES + 1).fill(0x20);
  let stall!: () => void;
  // The embedded store's answers: from memory, inside the request's callback (late = false); "/stall" holds the only slot.
  const handler = (req: Request): Response | Promise<Response> => {
    if (req.url.endsWith("/stall")) return new Promise<Response>((resolve) => (stall = () => resolve(encodedAnswer(small, false))));
    return encodedAnswer(req.url.endsWith("/large") ? large : small, false);
  };
  const gate = { admission, shed: () => new Response("shed", { status: 503 }) };
  const route = serveRoute(routeMetrics(new MetricsRegistry({ defaultMetrics: false })), "/t", handler, () => new Response("error", { status: 500 }), { gate, release: batch });
  const request = (path = "/t") => new Request(`http://q${path}`, { method: "POST", body: "{}" });

  expect(route(request())).toBeInstanceOf(Response);
  const held = route(request());
  expect(held).toBeInstanceOf(Promise);
  // Finished work as far as admission knows: nothing in flight while the answer waits for its batch.
  expect(admission.snapshot().inFlight).toBe(0);
  expect(batch.holding).toBe(1);
  // A body beyond the cork buffer is written in one send only from its callback: it leaves at once.
  expect(route(request("/large"))).toBeInstanceOf(Response);
  // A refusal leaves at once.
  const stalled = route(request("/stall"));
  const shed = route(request());
  expect(shed).toBeInstanceOf(Response);
  expect((shed as Response).status).toBe(503);
  expect(batch.holding).toBe(1);
  let released = false;
  void (held as Promise<Response>).then(() => (released = true));
  await Bun.sleep(0);
  expect(released).toBe(false);
  for (const end of turnEnds.splice(0)) end();
  expect(await (await held).text()).toBe('{"rows":[]}');
  expect(released).toBe(true);
  stall();
  expect((await stalled).status).toBe(200);
});

test("x-quiver-timeout-ms: decimal milliseconds from 1 to 60000, as README says; anything else a 400 naming the header", () => {
  const budget = (value: string) => lookupBudget(new Request("http://q/t", { headers: { "x-quiver-timeout-ms": value } }), 50);
  expect(lookupBudget(new Request("http://q/t"), 50)).toBe(50);
  expect([budget("1"), budget(" 250 "), budget("2.5"), budget("60000")]).toEqual([1, 250, 2.5, 60_000]);
  for (const bad of ["0", "0.5", "60001", "-1", "1e3", "0x10", "abc", ""]) {
    expect(() => budget(bad)).toThrow(`expected a budget in milliseconds from 1 to 60000, got ${JSON.stringify(bad)}`);
  }
  // A long value is quoted clipped, as other refusals quote client text (the whole of it was echoed, up to Bun's header limit).
  const long = "9".repeat(10_000);
  expect(() => budget(long)).toThrow(`got ${JSON.stringify("9".repeat(40))}… (10000 characters)`);
  let message = "";
  try {
    budget(long);
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message.length).toBeLessThan(200);
});

test("a bounded route gives up a handler's promise at its bound: 503 overdue, the slot back once; the handler's late end changes nothing", async () => {
  const timers = new FakeTimers();
  const done: boolean[] = [];
  const admission = { admit: () => 7, screen: () => 0, acquire: () => 7, done: (_at: number, failed: boolean) => done.push(failed) } as unknown as AdaptiveAdmission;
  let late!: (res: Response) => void;
  const handler = () =>
    new Promise<Response>((resolve) => {
      late = resolve;
    });
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const route = serveRoute(routeMetrics(metrics), "/t", handler, errorResponse, {
    gate: { admission, shed: () => new Response("shed", { status: 503 }) },
    bound: { at: () => 1234, watch: new OverdueWatch(timers) },
  });
  const answer = route(new Request("http://q/t", { method: "POST" })) as Promise<Response>;
  expect(timers.pending).toEqual([1234]);
  timers.fire();
  const res = await answer;
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe("1");
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe("overdue");
  expect(done).toEqual([true]);
  late(new Response("late"));
  await Bun.sleep(0);
  expect(done).toEqual([true]);
  const text = await metrics.render();
  expect(text).toContain('quiver_http_overdue_work_total{route="/t"} 1');
  expect(text).toContain('quiver_http_requests_total{route="/t",status="503"} 1');
  expect(text).not.toContain('status="200"');
});
