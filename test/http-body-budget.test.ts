import { describe, expect, test } from "bun:test";
import { createHttpEdge, type HttpEdge } from "../src/api/http/index.ts";
import { HealthMonitor } from "../src/ops/health-score.ts";
import { AnomalyBuffer, MetricsRegistry, ShedRecorder } from "../src/ops/index.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { releaseAtOnce } from "../src/runtime/index.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { FakeTimers } from "./support/fake-timers.ts";
import { HungNode } from "./support/hung-node.ts";

/**
 * Each request body is capped, but how many are read at once was not: 100
 * connections that each sent 4 MiB less a byte of a lookup body and then
 * stalled took a server from 0.5 to 0.96 GB RSS. Large bodies (over 64 KiB)
 * now reserve their length from one budget for the edge; past it a body is
 * refused 503 `bodies_in_flight` and dropped as it comes, not held.
 * Bodies are streams this test feeds: nothing waits on time.
 */

const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] }],
});

const KIB = 1024;

function edge(bodyBytesInFlight: number): HttpEdge {
  const node = new HungNode();
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const holder = new RegistryHolder(registry);
  const lookups = new LookupService(node, () => 0);
  const pushes = new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => 0);
  const admission = new AdaptiveAdmission({ fixedLimit: 8, queue: 0 });
  const anomalies = new AnomalyBuffer();
  return createHttpEdge({
    registry: holder,
    serving: new FeatureServing(holder, lookups, pushes, { maxRows: 100, maxValues: 100_000 }),
    store: node,
    metrics,
    anomalies,
    admission,
    sheds: new ShedRecorder(metrics, anomalies),
    release: releaseAtOnce,
    draining: () => false,
    health: new HealthMonitor(admission),
    limits: { maxBodyBytes: 1 << 20, maxRows: 100, lookupTimeoutMs: 100, bodyBytesInFlight },
    reloadRegistry: async () => registry,
    timers: new FakeTimers(),
  });
}

/** A request whose body the test sends: `first` at once, the rest when `finish` is called. */
function stalled(e: HttpEdge, path: string, size: number, declared: boolean, first = 100 * KIB) {
  let control!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      control = c;
    },
  });
  let sent = first;
  if (first > 0) control.enqueue(new Uint8Array(first).fill(0x20));
  const headers: Record<string, string> = { "content-type": "application/json", ...(declared ? { "content-length": String(size) } : {}) };
  const res = e.app.request(path, { method: "POST", body, headers, duplex: "half" } as RequestInit);
  return {
    res: Promise.resolve(res),
    /** `bytes` more spaces now. */
    more(bytes: number) {
      sent += bytes;
      control.enqueue(new Uint8Array(bytes).fill(0x20));
    },
    finish() {
      // Spaces, then a value: valid JSON that is no lookup (a 400 that needs no storage).
      control.enqueue(new Uint8Array(size - sent - 2).fill(0x20));
      control.enqueue(new TextEncoder().encode("[]"));
      control.close();
    },
  };
}

const large = (e: HttpEdge, path: string, size: number) =>
  Promise.resolve(e.app.request(path, { method: "POST", body: `${" ".repeat(size - 2)}[]`, headers: { "content-type": "application/json", "content-length": String(size) } }));

/** The budget's gauge on /metrics. */
async function inFlight(e: HttpEdge): Promise<number> {
  const text = await (await e.app.request("/metrics")).text();
  return Number(/\nquiver_http_body_bytes_in_flight (\d+)\n/.exec(text)?.[1]);
}

/** Until the gauge reads `bytes` (a body's chunks are taken as its reader gets them, a few promise turns later). */
async function inFlightReaches(e: HttpEdge, bytes: number): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const now = await inFlight(e);
    if (now === bytes) return now;
    await Bun.sleep(1);
  }
  return inFlight(e);
}

async function codeOf(res: Response): Promise<{ status: number; code: string }> {
  const body = (await res.json()) as { error: { code: string } };
  return { status: res.status, code: body.error.code };
}

describe("bodies read at once", () => {
  test("a large body that would pass the budget while another is still arriving is a 503, and is taken again once that one is read", async () => {
    const e = edge(250 * KIB);
    // A reserves the 100 KiB it has sent as its handler reads them.
    const a = stalled(e, "/v1/lookup", 200 * KIB, true);
    // Operators see the reservation (and that it falls back to 0 when idle) on /metrics.
    expect(await inFlightReaches(e, 100 * KIB)).toBe(100 * KIB);
    expect(await codeOf(await large(e, "/v1/lookup", 200 * KIB))).toEqual({ status: 503, code: "bodies_in_flight" });
    expect(await codeOf(await large(e, "/v1/push", 200 * KIB))).toEqual({ status: 503, code: "bodies_in_flight" });
    // Within what is left (and small bodies take nothing from it).
    expect((await codeOf(await large(e, "/v1/lookup", 90 * KIB))).code).toBe("invalid_request");
    expect((await codeOf(await large(e, "/v1/lookup", 60 * KIB))).code).toBe("invalid_request");
    a.finish();
    expect((await codeOf(await a.res)).code).toBe("invalid_request");
    expect((await codeOf(await large(e, "/v1/lookup", 200 * KIB))).code).toBe("invalid_request");
    expect(await inFlight(e)).toBe(0);
  });

  test("a body declared large takes from the budget only the bytes it has sent: connections that send headers alone take nothing", async () => {
    // Before, each reserved its Content-Length as its handler started: 70 such connections to a server from the clone,
    // no body byte sent, took its whole 256 MiB and every body over 64 KiB was a 503 while they stayed.
    const e = edge(300 * KIB);
    const idle = [stalled(e, "/v1/lookup", 250 * KIB, true, 0), stalled(e, "/v1/push", 250 * KIB, true, 0)];
    expect(await inFlight(e)).toBe(0);
    expect((await codeOf(await large(e, "/v1/lookup", 200 * KIB))).code).toBe("invalid_request");
    for (const s of idle) {
      s.finish();
      expect((await codeOf(await s.res)).status).toBe(400);
    }
    expect(await inFlight(e)).toBe(0);
  });

  test("a body refused for the budget gives back what it had taken at once, not after its rest is drained", async () => {
    const e = edge(250 * KIB);
    const a = stalled(e, "/v1/push", 200 * KIB, false);
    expect(await inFlightReaches(e, 100 * KIB)).toBe(100 * KIB);
    // B takes 40 KiB, then its next 120 KiB would pass the budget: refused, its rest read and dropped as it comes.
    const b = stalled(e, "/v1/push", 200 * KIB, false, 40 * KIB);
    expect(await inFlightReaches(e, 140 * KIB)).toBe(140 * KIB);
    b.more(120 * KIB);
    // Before: 140 KiB while B's client was still sending (up to the drain's 2 s for one that stalls).
    expect(await inFlightReaches(e, 100 * KIB)).toBe(100 * KIB);
    b.finish();
    expect(await codeOf(await b.res)).toEqual({ status: 503, code: "bodies_in_flight" });
    a.finish();
    expect((await codeOf(await a.res)).code).toBe("invalid_request");
    expect(await inFlight(e)).toBe(0);
  });

  test("a body without a length takes its chunks from the budget as they come", async () => {
    const e = edge(150 * KIB);
    const a = stalled(e, "/v1/push", 120 * KIB, false);
    const b = stalled(e, "/v1/push", 120 * KIB, false);
    // The rest of B is read and dropped, so its client reads the 503.
    b.finish();
    expect(await codeOf(await b.res)).toEqual({ status: 503, code: "bodies_in_flight" });
    a.finish();
    expect((await codeOf(await a.res)).code).toBe("invalid_request");
    const c = stalled(e, "/v1/push", 120 * KIB, false);
    c.finish();
    expect((await codeOf(await c.res)).code).toBe("invalid_request");
  });
});
