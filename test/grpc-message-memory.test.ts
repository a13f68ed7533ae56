import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import http2 from "node:http2";
import { createGrpcEdge, type GrpcEdge } from "../src/api/grpc/index.ts";
import { MemoryKvNode } from "../src/kv/memory-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * What a call that has sent its message costs the server before it is run.
 * grpc-js runs a unary handler at the client's half-close; the message was
 * decoded on arrival, and decoded it was far larger than its bytes: 4 MiB of
 * packed int64 zeros (4 KB gzipped) became 240 MB of protobufjs Longs, held
 * while the client kept the call open. Four such calls on one connection held
 * ~970 MB; a connection may have 100 open.
 */

const MAX = 4 << 20;
const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64" }] }],
});

async function startEdge(limits: { heldMessageBytes?: number; unendedMessageMs?: number } = {}): Promise<{ edge: GrpcEdge; port: number }> {
  const node = new MemoryKvNode("m");
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node), new PushService(node, { maxFutureSkewMs: 0 }), { maxRows: 100, maxValues: 100_000 });
  const edge = createGrpcEdge({
    serving,
    metrics: new MetricsRegistry(),
    ready: async () => true,
    admission: new AdaptiveAdmission({ fixedLimit: 8 }),
    limits: { maxMessageBytes: MAX, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, ...limits },
  });
  return { edge, port: await edge.listen("127.0.0.1", 0) };
}

let edge: GrpcEdge;
let port: number;
beforeAll(async () => {
  ({ edge, port } = await startEdge());
});
afterAll(() => edge.drain(1000));

const varint = (v: number): number[] => {
  const out: number[] = [];
  for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
  out.push(v);
  return out;
};

/** A quiver.v1 LookupRequest just under the limit: one driver_id column of packed int64 zeros (a byte each), gRPC-framed. */
function hugeLookup(): Buffer {
  const n = MAX - 64;
  const column = Buffer.concat([Buffer.from([0x0a, 9, ...Buffer.from("driver_id"), 0x12, ...varint(n)]), Buffer.alloc(n, 0)]);
  const message = Buffer.concat([Buffer.from([0x0a, 10, ...Buffer.from("stats:rate"), 0x1a, ...varint(column.length)]), column]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Answers a call's grpc-status and grpc-message (trailers, or headers for a trailers-only answer). */
function statusOf(stream: http2.ClientHttp2Stream): Promise<{ status: string; message: string }> {
  return new Promise((resolve) => {
    const seen = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) resolve({ status: String(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) });
    };
    stream.on("response", seen);
    stream.on("trailers", seen);
    stream.on("data", () => {});
    stream.on("error", () => {});
  });
}

/** Opens a Lookup call and sends `body` whole; ends the call when told. */
async function openCall(session: http2.ClientHttp2Session, body: Buffer, end: boolean) {
  const s = session.request({ ":method": "POST", ":path": "/quiver.v1.FeatureService/Lookup", "content-type": "application/grpc", te: "trailers" });
  const answered = statusOf(s);
  await new Promise<void>((resolve) => s.write(body, () => resolve()));
  if (end) s.end();
  return { s, answered };
}

/** A health check after the calls sent before it on `session`: once it is answered, the server has read their frames. */
async function readSoFar(session: http2.ClientHttp2Session): Promise<void> {
  const check = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
  const checked = statusOf(check);
  check.end(Buffer.from([0, 0, 0, 0, 0]));
  expect((await checked).status).toBe("0");
}

const heapMb = () => {
  Bun.gc(true);
  return process.memoryUsage().heapUsed / 1e6;
};

test("calls whose huge messages have arrived but whose clients have not ended them hold their bytes, not 60 times as much; ended, they are answered", async () => {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    const body = hugeLookup();
    const before = heapMb();
    const calls = [];
    // The whole message, and no half-close: each call waits for its end.
    for (let i = 0; i < 4; i++) calls.push(await openCall(session, body, false));
    await readSoFar(session);
    // Held: the four messages' bytes (16 MiB) and change. Decoded on arrival, they were ~970 MB.
    expect(heapMb() - before).toBeLessThan(128);
    for (const c of calls) c.s.end();
    for (const c of calls) {
      const { status, message } = await c.answered;
      expect(status).toBe("3"); // INVALID_ARGUMENT: too many rows, named
      expect(message).toContain("entities");
    }
  } finally {
    session.close();
  }
});

describe("large messages held before they are read are bounded", () => {
  test("past the cap a large message is refused RESOURCE_EXHAUSTED unread; reading the held ones frees their room", async () => {
    const e = await startEdge({ heldMessageBytes: 10 << 20, unendedMessageMs: 60_000 });
    const session = http2.connect(`http://127.0.0.1:${e.port}`);
    session.on("error", () => {});
    try {
      const body = hugeLookup();
      const held = [await openCall(session, body, false), await openCall(session, body, false)];
      await readSoFar(session);
      // 8 MiB held by calls their clients have not ended: a third 4 MiB message would pass the 10 MiB cap.
      const refused = await openCall(session, body, true);
      expect(await refused.answered).toEqual({ status: "8", message: expect.stringContaining("request messages not yet run") });
      for (const c of held) c.s.end();
      for (const c of held) expect((await c.answered).status).toBe("3");
      // Read, they hold nothing: the next one is read too (INVALID_ARGUMENT for its rows, not refused).
      const next = await openCall(session, body, true);
      expect(await next.answered).toEqual({ status: "3", message: expect.stringContaining("entities") });
      // Small messages are never counted: a lookup passes whatever is held.
      const small = Buffer.from([0, 0, 0, 0, 0]);
      expect((await (await openCall(session, small, true)).answered).status).toBe("3");
    } finally {
      session.close();
      await e.edge.drain(1000);
    }
  });

  test("a large message whose call is not ended in time is dropped: its room is free again, and the call, ended late, is INVALID_ARGUMENT", async () => {
    const e = await startEdge({ heldMessageBytes: 6 << 20, unendedMessageMs: 200 });
    const session = http2.connect(`http://127.0.0.1:${e.port}`);
    session.on("error", () => {});
    try {
      const body = hugeLookup();
      const stalled = await openCall(session, body, false);
      await readSoFar(session);
      // Dropped between 200 and 400 ms after it arrived (the sweeps are timers due before this one).
      await Bun.sleep(1000);
      // Its 4 MiB no longer held: another 4 MiB message fits under the 6 MiB cap and is read.
      const next = await openCall(session, body, true);
      expect(await next.answered).toEqual({ status: "3", message: expect.stringContaining("entities") });
      stalled.s.end();
      expect(await stalled.answered).toEqual({ status: "3", message: expect.stringContaining("was not ended within 200 ms") });
    } finally {
      session.close();
      await e.edge.drain(1000);
    }
  });
});
