import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import http2 from "node:http2";
import { createGrpcEdge, type GrpcEdge } from "../src/api/grpc/index.ts";
import { MemoryKvNode } from "../src/kv/memory-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { FakeTimers } from "./support/fake-timers.ts";
import { frameHeader, type OpenCall, openRawCall, until } from "./support/raw-grpc-call.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * Unary calls whose request never arrives. Before, a client that opened a
 * Lookup (or GetOnlineFeatures, Push…) and sent its headers but no DATA frame
 * held the call for good: ≈ 4.7 KB each, 100 per connection, connections not
 * counted. The edge ends such a call at --grpc-request-wait after its headers
 * (DEADLINE_EXCEEDED, request_incomplete) and resets its stream. The bound's
 * timer is a fake here: nothing waits on real time but the transport.
 */

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const WAIT_MS = 10_000;
const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] }],
});

/** Opens a call on `path` and writes `bytes` (none: headers only), leaving the stream open unless `end`. */
function open(session: http2.ClientHttp2Session, path: string, bytes?: Buffer, headers: http2.OutgoingHttpHeaders = {}, end = false): OpenCall {
  return openRawCall(session, path, bytes === undefined ? [] : [bytes], headers, end);
}

describe("unary calls whose request never arrives", () => {
  const timers = new FakeTimers();
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  let edge: GrpcEdge;
  let session: http2.ClientHttp2Session;
  /** The edge's gauge of calls waiting for their request. */
  const waiting = async () => Number(/^quiver_grpc_incomplete_requests (\d+)$/m.exec(await metrics.render())?.[1] ?? Number.NaN);

  beforeAll(async () => {
    const node = new MemoryKvNode("m");
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node, () => NOW), new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW), {
      maxRows: 100,
      maxValues: 100_000,
    });
    edge = createGrpcEdge({ serving, metrics, ready: async () => true, timers, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, requestWaitMs: WAIT_MS } });
    const port = await edge.listen("127.0.0.1", 0);
    session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
  });
  afterAll(async () => {
    session.close();
    await edge.drain(1000);
  });

  test("are ended DEADLINE_EXCEEDED at the bound and their streams reset; streams, health and prompt calls are left alone", async () => {
    expect(await waiting()).toBe(0);
    const stalled = [
      open(session, "/quiver.v1.FeatureService/Lookup"),
      open(session, "/feast.serving.ServingService/GetOnlineFeatures"),
      open(session, "/quiver.v1.FeatureService/Push"),
      open(session, "/GrpcFeatureServer/Push"),
      // Part of a message (10 of 100 bytes), then nothing.
      open(session, "/quiver.v1.FeatureService/Lookup", Buffer.concat([frameHeader(100), Buffer.alloc(10, 0x0a)])),
      // A whole (empty) message, never the end of the stream.
      open(session, "/quiver.v1.FeatureService/Lookup", frameHeader(0)),
    ];
    const stream = open(session, "/quiver.v1.FeatureService/LookupStream");
    const health = open(session, "/grpc.health.v1.Health/Watch", frameHeader(0));
    // A prompt call is answered and does not wait.
    const prompt = open(session, "/quiver.v1.FeatureService/Lookup", frameHeader(0), {}, true);
    expect((await prompt.status).code).not.toBe(4);
    expect(await until(async () => (await waiting()) === stalled.length)).toBe(true);

    // Short of the bound: nothing is ended.
    timers.fire(performance.now() + WAIT_MS / 2);
    expect(await waiting()).toBe(stalled.length);

    timers.fire(performance.now() + WAIT_MS + 1);
    for (const c of stalled) {
      const s = await c.status;
      expect(s.code).toBe(4);
      expect(s.message).toStartWith("request_incomplete");
      expect(s.message).toContain(`${WAIT_MS} ms`);
      expect(s.errorCode).toBe("request_incomplete");
      // Reset by the server (NO_ERROR: stop sending), though its client never ended it: the call is let go.
      expect(await c.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
    }
    expect(await waiting()).toBe(0);
    const text = await metrics.render();
    expect(text).toContain('quiver_grpc_incomplete_requests_total{method="quiver.v1.FeatureService/Lookup"} 3');
    expect(text).toContain('quiver_grpc_incomplete_requests_total{method="feast.serving.ServingService/GetOnlineFeatures"} 1');
    expect(text).toContain('quiver_grpc_incomplete_requests_total{method="quiver.v1.FeatureService/Push"} 1');
    expect(text).toContain('quiver_grpc_incomplete_requests_total{method="GrpcFeatureServer/Push"} 1');

    // The stream and the health watch are still open, and the stream still answers.
    const again = open(session, "/quiver.v1.FeatureService/Lookup", frameHeader(0), {}, true);
    await again.status;
    expect(stream.stream.closed).toBe(false);
    expect(health.stream.closed).toBe(false);
    stream.stream.end();
    expect((await stream.status).code).toBe(0);
    health.stream.close(http2.constants.NGHTTP2_CANCEL);
    await health.closed;
    expect(timers.pending).toEqual([]);
  });

  test("a client's own shorter deadline answers first; the stream it keeps open is reset at the bound", async () => {
    const late = open(session, "/quiver.v1.FeatureService/Lookup", undefined, { "grpc-timeout": "200m" });
    const s = await late.status;
    expect(s.code).toBe(4);
    expect(s.message).not.toContain("request_incomplete");
    const before = await metrics.render();
    expect(await until(async () => (await waiting()) === 1)).toBe(true);
    timers.fire(performance.now() + WAIT_MS + 1);
    expect(await late.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(await waiting()).toBe(0);
    // Not counted as ended here: grpc-js's deadline answered it.
    expect(/incomplete_requests_total\{method="quiver.v1.FeatureService\/Lookup"\} (\d+)/.exec(await metrics.render())?.[1]).toBe(
      /incomplete_requests_total\{method="quiver.v1.FeatureService\/Lookup"\} (\d+)/.exec(before)?.[1],
    );
  });
});

test("with an admin token: a write refused at its headers whose client keeps the stream open is reset at the bound; an authorized one that never sends its message is ended", async () => {
  const timers = new FakeTimers();
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const node = new MemoryKvNode("m");
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node, () => NOW), new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW), {
    maxRows: 100,
    maxValues: 100_000,
  });
  const edge = createGrpcEdge({ serving, metrics, ready: async () => true, timers, adminToken: "s3cret", limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, requestWaitMs: WAIT_MS } });
  const session = http2.connect(`http://127.0.0.1:${await edge.listen("127.0.0.1", 0)}`);
  session.on("error", () => {});
  try {
    const refused = open(session, "/quiver.v1.FeatureService/Push");
    const allowed = open(session, "/quiver.v1.FeatureService/Push", undefined, { authorization: "Bearer s3cret" });
    expect((await refused.status).code).toBe(16);
    const waiting = async () => Number(/^quiver_grpc_incomplete_requests (\d+)$/m.exec(await metrics.render())?.[1] ?? Number.NaN);
    expect(await until(async () => (await waiting()) === 2)).toBe(true);
    timers.fire(performance.now() + WAIT_MS + 1);
    expect(await refused.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
    const s = await allowed.status;
    expect(s.code).toBe(4);
    expect(s.errorCode).toBe("request_incomplete");
    expect(await allowed.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(await waiting()).toBe(0);
    expect(await metrics.render()).toContain('quiver_grpc_incomplete_requests_total{method="quiver.v1.FeatureService/Push"} 1');
  } finally {
    session.close();
    await edge.drain(1000);
  }
});
