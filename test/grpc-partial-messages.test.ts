import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import http2 from "node:http2";
import { Server, ServerCredentials, type ServerInterceptingCall, type ServiceDefinition, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { createGrpcEdge, type GrpcEdge } from "../src/api/grpc/index.ts";
import { PartialMessages } from "../src/api/grpc/partial-messages.ts";
import { MemoryKvNode } from "../src/kv/memory-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { frameHeader, type OpenCall, openRawCall, until } from "./support/raw-grpc-call.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * Messages received in part. grpc-js buffers a message until it is whole: one
 * connection that started 100 Lookups of 4 MiB and sent all but the last byte
 * of each held 413 MB of the server's memory for as long as it stayed open.
 * These calls send a message's frames and stop; the server must count them
 * and refuse the call that takes them past the cap, and give bytes back when
 * a message is whole or its call ends.
 */

const KIB = 1024;

/** A call on `path` whose message declares `declared` bytes and sends the first `sent` of them, its stream left open. */
function call(session: http2.ClientHttp2Session, path: string, declared: number, sent: number, headers: http2.OutgoingHttpHeaders = {}): OpenCall {
  return openRawCall(session, path, [frameHeader(declared), Buffer.alloc(sent, 0x0a)], headers);
}

describe("the budget of message bytes received in part", () => {
  const partial = new PartialMessages(300 * KIB);
  const server = new Server({ "grpc.max_receive_message_length": 1 << 20, interceptors: [partial.interceptor] });
  const echo: ServiceDefinition = {
    Echo: { path: "/t.T/Echo", requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  };
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    server.addService(echo, { Echo: (c: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => done(null, Buffer.from(String(c.request.length))) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
  });
  afterAll(() => {
    session.close();
    server.forceShutdown();
  });

  test("counts a message's bytes as they come, refuses the call that passes the cap, and gives bytes back when a message is whole or its call ends", async () => {
    const a = call(session, "/t.T/Echo", 200 * KIB, 150 * KIB);
    expect(await until(() => partial.inUse === 150 * KIB)).toBe(true);
    const b = call(session, "/t.T/Echo", 200 * KIB, 160 * KIB);
    const refused = await b.status;
    expect(refused.code).toBe(8);
    expect(refused.message).toStartWith("messages_in_flight");
    // Reset by the server (NO_ERROR: stop sending), though its client never ended it: its bytes are not held.
    expect(await b.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(await until(() => partial.inUse === 150 * KIB)).toBe(true);
    // A's message completes: it is answered and its bytes are back.
    a.stream.end(Buffer.alloc(50 * KIB, 0x0a));
    expect((await a.status).code).toBe(0);
    expect(partial.inUse).toBe(0);
    // A call its client resets mid-message gives its bytes back.
    const c = call(session, "/t.T/Echo", 200 * KIB, 100 * KIB);
    expect(await until(() => partial.inUse === 100 * KIB)).toBe(true);
    c.stream.close(http2.constants.NGHTTP2_CANCEL);
    expect(await until(() => partial.inUse === 0)).toBe(true);
    // And the budget serves whole messages again.
    const d = call(session, "/t.T/Echo", 250 * KIB, 250 * KIB);
    d.stream.end();
    expect((await d.status).code).toBe(0);
    expect(partial.inUse).toBe(0);
  });

  test("a call the server ends while its message is arriving (deadline exceeded) gives its bytes back and is reset, though its client holds it open", async () => {
    // grpc-js answers DEADLINE_EXCEEDED on its own timer; its client then sends nothing more and never ends the
    // stream. Before: the 100 KiB stayed counted (and held) until the connection closed.
    const late = call(session, "/t.T/Echo", 200 * KIB, 100 * KIB, { "grpc-timeout": "100m" });
    expect((await late.status).code).toBe(4);
    expect(await until(() => partial.inUse === 0, 5_000)).toBe(true);
    expect(await late.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });
});

test("a grpc-js whose call decoder is not the one read here leaves calls alone and says so once, instead of refusing every call", async () => {
  // An upgrade that keeps the decoder's `write` on each instance (none on its class) and renames its state: played
  // by an interceptor ahead of the count that swaps each call's decoder for one shaped so, which decodes as before.
  class MovedDecoder {
    readonly write: (data: Buffer) => Buffer[];
    constructor(inner: { write(data: Buffer): Buffer[] }) {
      this.write = (data) => inner.write(data);
    }
  }
  const moved = (_method: unknown, c: unknown) => {
    const base = c as { decoder: { write(data: Buffer): Buffer[] } };
    base.decoder = new MovedDecoder(base.decoder);
    return c as ServerInterceptingCall;
  };
  const warnings: string[] = [];
  const partial = new PartialMessages(100 * KIB, (m) => warnings.push(m));
  const server = new Server({ interceptors: [moved, partial.interceptor] });
  const echo: ServiceDefinition = {
    Echo: { path: "/t.T/Echo", requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  };
  server.addService(echo, { Echo: (c: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => done(null, Buffer.from(String(c.request.length))) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    for (const size of [10, 200 * KIB]) {
      const c = call(session, "/t.T/Echo", size, size);
      c.stream.end();
      expect((await c.status).code).toBe(0);
    }
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("not counted");
    expect(partial.inUse).toBe(0);
  } finally {
    session.close();
    server.forceShutdown();
  }
});

test("the gRPC edge refuses a Lookup whose message, received in part, passes its budget, instead of holding it", async () => {
  const registry = compileRegistry({
    entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
    featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64" }] }],
  });
  const node = new MemoryKvNode("m");
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node), new PushService(node, { maxFutureSkewMs: 0 }), { maxRows: 100, maxValues: 100_000 });
  const edge: GrpcEdge = createGrpcEdge({
    serving,
    metrics: new MetricsRegistry(),
    ready: async () => true,
    admission: new AdaptiveAdmission({ fixedLimit: 8 }),
    limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, partialMessageBytes: 300 * KIB },
  });
  const port = await edge.listen("127.0.0.1", 0);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  // The drain below closes the connection (GOAWAY): not an error of the test.
  session.on("error", () => {});
  try {
    // 400 KiB of a message declared 900 KiB, then nothing: held before, for as long as the connection lived.
    const held = call(session, "/quiver.v1.FeatureService/Lookup", 900 * KIB, 400 * KIB);
    const status = await held.status;
    expect(status.code).toBe(8);
    expect(status.message).toStartWith("messages_in_flight");
    expect(await held.closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
  } finally {
    session.destroy();
    await edge.drain(1000);
  }
});
