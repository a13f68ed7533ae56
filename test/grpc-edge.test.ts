import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { loadSync } from "@grpc/proto-loader";
import { createGrpcEdge, type GrpcEdge } from "../src/api/grpc/index.ts";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../src/kv/kv-node.ts";
import { neverNow, UNAVAILABLE } from "../src/kv/kv-node.ts";
import { MemoryKvNode } from "../src/kv/memory-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { AnomalyBuffer, ShedRecorder } from "../src/ops/index.ts";
import { CacheTier, cacheMetrics, L1Cache } from "../src/cache/index.ts";
import { LocalChangeFeed } from "../src/feed/local-feed.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { AdaptiveAdmission } from "../src/resilience/index.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { type Clients, connect, grpc, unaryCall } from "./support/grpc-client.ts";
import { stalledStreamingCall } from "./support/h2-stalled-client.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] }],
});

/**
 * A storage node whose behaviour the test sets: answer from memory, answer
 * some keys UNAVAILABLE (a failed shard), mark rows stale (a cache grace copy),
 * or hold every read until the test releases it (a stalled shard).
 */
class ScriptedNode implements KvNode {
  readonly id = "scripted";
  readonly readsNow = "never" as const;
  readonly rawNow = undefined;
  readonly inner = new MemoryKvNode("inner");
  mode: "normal" | "down" | "stale" = "normal";
  /** When set, reads wait for it (a call held in flight). */
  hold: Promise<void> | undefined;
  healthy = true;
  readonly contexts: (ReadContext | undefined)[] = [];
  getManyNow = neverNow;

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    this.contexts.push(ctx);
    if (this.hold) await this.hold;
    const slots = await this.inner.getMany(keys);
    if (this.mode === "down") {
      ctx?.degraded?.push("shard-b");
      return slots.map(() => UNAVAILABLE);
    }
    if (this.mode === "stale") return slots.map((s) => (s && s !== UNAVAILABLE ? { ...s, stale: true as const } : s));
    return slots;
  }
  putMany(entries: readonly KvEntry[]): Promise<PutOutcome> {
    return this.inner.putMany(entries);
  }
  deleteMany(keys: readonly string[]): Promise<number> {
    return this.inner.deleteMany(keys);
  }
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.inner.scan(cursor, count, prefix);
  }
  async health(): Promise<NodeHealth> {
    return { id: this.id, ok: this.healthy };
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

let node: ScriptedNode;

/** Stalls `n`'s reads until the returned release is called (never before, whatever the machine's load). */
function stall(n: ScriptedNode): () => void {
  let release = () => {};
  n.hold = new Promise<void>((r) => {
    release = () => {
      n.hold = undefined;
      r();
    };
  });
  return release;
}
let edge: GrpcEdge;
let clients: Clients;
let address: string;

beforeAll(async () => {
  node = new ScriptedNode();
  const push = new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW);
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node, () => NOW), push, { maxRows: 100, maxValues: 100_000 });
  await push.write(push.prepare(registry.views.get("stats")!, { rowCount: 1, keyNames: ["driver_id"], value: (_r, k) => (k === "driver_id" ? 1 : k === "rate" ? 0.5 : undefined), pathOf: (_r, k) => k }, []));
  edge = createGrpcEdge({
    serving,
    metrics: new MetricsRegistry(),
    ready: async () => (await node.health()).ok,
    limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, lookupTimeoutMs: 250 },
    healthIntervalMs: 20,
  });
  address = `127.0.0.1:${await edge.listen("127.0.0.1", 0)}`;
  clients = connect(address);
}, 120_000);
afterAll(async () => {
  clients.close();
  await edge.drain(1000);
});

/** Protobuf by hand for the raw-stream tests: a varint and a string's bytes. */
const varint = (v: number): number[] => {
  const out: number[] = [];
  for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
  out.push(v);
  return out;
};
const utf8Bytes = (s: string): number[] => [...new TextEncoder().encode(s)];

/** A gRPC edge over a fresh ScriptedNode, listening on a free port. */
async function edgeOverScripted(maxRows: number): Promise<{ n: ScriptedNode; e: ReturnType<typeof createGrpcEdge>; port: number }> {
  const n = new ScriptedNode();
  const push = new PushService(n, { maxFutureSkewMs: 0 }, () => NOW);
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(n, () => NOW), push, { maxRows, maxValues: 100_000 });
  const e = createGrpcEdge({ serving, metrics: new MetricsRegistry(), ready: async () => true, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000 } });
  return { n, e, port: await e.listen("127.0.0.1", 0) };
}

/** Waits until the node has taken lookups and stopped: quiet for 0.5 s, at most 15 s. */
async function untilQuiet(n: ScriptedNode): Promise<void> {
  let last = -1;
  for (let quiet = 0, t = 0; quiet < 5 && t < 150; t++) {
    await Bun.sleep(100);
    quiet = n.contexts.length === last && last > 0 ? quiet + 1 : 0;
    last = n.contexts.length;
  }
}

const lookup = { features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: ["1", "2"] }] };
const feastLookup = { features: { val: ["stats:rate"] }, entities: { driver_id: { val: [{ int64_val: "1" }, { int64_val: "2" }] } } };

describe("response flags", () => {
  test("a failed shard: UNAVAILABLE values, x-quiver-degraded; Feast says NOT_FOUND and counts them in x-quiver-unavailable", async () => {
    node.mode = "down";
    try {
      const q = await unaryCall<{ columns: { statuses: string[]; double_values: number[] }[]; degraded: string[] }>(clients.quiver, "Lookup", lookup);
      expect(q.response!.columns[0]!.statuses).toEqual(["UNAVAILABLE", "UNAVAILABLE"]);
      expect(q.response!.columns[0]!.double_values).toEqual([0.25, 0.25]);
      expect(q.response!.degraded).toEqual(["shard-b"]);
      expect(q.headers["x-quiver-degraded"]).toBe("shard-b");
      const f = await unaryCall<{ results: { statuses: string[] }[] }>(clients.feast, "GetOnlineFeatures", feastLookup);
      expect(f.response!.results[1]!.statuses).toEqual(["NOT_FOUND", "NOT_FOUND"]);
      expect(f.headers["x-quiver-unavailable"]).toBe("2");
      expect(f.headers["x-quiver-degraded"]).toBe("shard-b");
    } finally {
      node.mode = "normal";
    }
  });

  test("values from a cache's grace window are flagged stale", async () => {
    node.mode = "stale";
    try {
      const q = await unaryCall<{ columns: { stale: boolean[]; statuses: string[] }[] }>(clients.quiver, "Lookup", lookup);
      expect(q.response!.columns[0]!.stale).toEqual([true, false]);
      expect(q.headers["x-quiver-stale"]).toBe("true");
      const f = await unaryCall(clients.feast, "GetOnlineFeatures", feastLookup);
      expect(f.headers["x-quiver-stale"]).toBe("true");
    } finally {
      node.mode = "normal";
    }
    const fresh = await unaryCall(clients.quiver, "Lookup", lookup);
    expect(fresh.headers["x-quiver-stale"]).toBeUndefined();
  });
});

describe("deadlines", () => {
  test("the call's deadline is the lookup budget; past it the answer is DEADLINE_EXCEEDED", async () => {
    const release = stall(node);
    node.contexts.length = 0;
    try {
      const started = Date.now();
      const { error } = await unaryCall(clients.quiver, "Lookup", lookup, { deadlineMs: 300 });
      expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(Date.now() - started).toBeLessThan(4000);
      const ctx = node.contexts[0];
      expect(ctx?.deadline).toBeDefined();
      // The budget handed to storage is the call's: within the 300 ms it was given (generous bounds for a loaded machine).
      expect(ctx!.deadline! - performance.now()).toBeLessThan(300);
      const feast = await unaryCall(clients.feast, "GetOnlineFeatures", feastLookup, { deadlineMs: 300 });
      expect(feast.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      release();
    }
  });

  test("a deadline past 60 s bounds the call, not the lookup: storage gets 60 s at most, as over HTTP", async () => {
    // A 300 s deadline was the storage budget: with a shard hung, the lookup held its admission slot for
    // minutes after its client had cancelled.
    node.contexts.length = 0;
    await unaryCall(clients.quiver, "Lookup", lookup, { deadlineMs: 300_000 });
    await unaryCall(clients.feast, "GetOnlineFeatures", feastLookup, { deadlineMs: 300_000 });
    expect(node.contexts).toHaveLength(2);
    for (const ctx of node.contexts) expect(ctx!.deadline! - performance.now()).toBeLessThanOrEqual(60_000);
    for (const ctx of node.contexts) expect(ctx!.deadline! - performance.now()).toBeGreaterThan(50_000);
  });

  test("without a deadline the lookup gets the server's default budget (--lookup-timeout-ms), as over HTTP", async () => {
    node.contexts.length = 0;
    await unaryCall(clients.quiver, "Lookup", lookup);
    const ctx = node.contexts[0];
    expect(ctx?.deadline).toBeDefined();
    expect(ctx!.deadline! - performance.now()).toBeLessThan(250);
  });
});

describe("LookupStream", () => {
  test("answers every lookup with its id, a bad one with an error, and ends after the client half-closes", async () => {
    const call = (clients.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: { status: number; path: string } | null; columns: { double_values: number[] }[] }> }).LookupStream();
    const answers: { id: string; error: { status: number; path: string } | null; columns: { double_values: number[] }[] }[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (a) => answers.push(a));
      call.on("end", () => resolve());
      call.on("error", reject);
    });
    for (let i = 1; i <= 20; i++) call.write({ ...lookup, id: String(i) });
    call.write({ features: ["stats:ghost"], entities: [], id: "21" });
    call.write({ features: ["stats:rate"], entities: [{ name: "driver_id", string_values: ["x"] }], id: "22" });
    call.end();
    await ended;
    expect(answers).toHaveLength(22);
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get("7")!.columns[0]!.double_values).toEqual([0.5, 0.25]);
    expect(byId.get("7")!.error).toBeNull();
    expect(byId.get("21")!.error).toMatchObject({ status: grpc.status.NOT_FOUND, path: "features[0]" });
    expect(byId.get("22")!.error).toMatchObject({ status: grpc.status.INVALID_ARGUMENT, path: "entities.driver_id[0]" });
  });

  test("a client that sends lookups and does not read the answers is not answered without bound: reading pauses until it reads", async () => {
    const { n, e, port } = await edgeOverScripted(10);
    await n.inner.putMany([{ key: "stats@1/driver_id=i1", row: { ts: NOW - 1000, values: [0.5] } }]);
    // quiver.v1 LookupRequest { features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: [1] }], id }, by hand.
    const column = [0x0a, 9, ...utf8Bytes("driver_id"), 0x12, 1, 1];
    const request = (id: number) => new Uint8Array([0x0a, 10, ...utf8Bytes("stats:rate"), 0x1a, column.length, ...column, 0x30, ...varint(id)]);
    const N = 20_000;
    const client = await stalledStreamingCall(port, "/quiver.v1.FeatureService/LookupStream", Array.from({ length: N }, (_, i) => request(i + 1)));
    try {
      // Until the server has taken lookups (each reads the store once) and stopped.
      await untilQuiet(n);
      // It answered what the client's 64 KiB window holds (and a window of lookups), then stopped reading, so the
      // client could not send the rest: neither the answers nor the requests pile up in the server.
      expect(client.receivedBytes()).toBeGreaterThan(0);
      expect(client.receivedBytes()).toBeLessThanOrEqual(65_535);
      expect(n.contexts.length).toBeLessThan(N / 4);
      expect(client.sentMessages()).toBeLessThan(N / 2);
    } finally {
      client.close();
      await e.drain(1000);
    }
  });

  test("large answers the client does not read pause reading by their bytes, not only their count", async () => {
    const { n, e, port } = await edgeOverScripted(20_000);
    // 20,000 driver ids (packed int64): each answer is ~190 KB (a double, a status and a time per row).
    const ids = Array.from({ length: 20_000 }, (_, i) => varint(i + 1)).flat();
    const column = [0x0a, 9, ...utf8Bytes("driver_id"), 0x12, ...varint(ids.length), ...ids];
    const request = (id: number) => new Uint8Array([0x0a, 10, ...utf8Bytes("stats:rate"), 0x1a, ...varint(column.length), ...column, 0x30, ...varint(id)]);
    const client = await stalledStreamingCall(port, "/quiver.v1.FeatureService/LookupStream", Array.from({ length: 60 }, (_, i) => request(i + 1)));
    try {
      await untilQuiet(n);
      // Reading paused once 1 MiB of answers waited (at most ~6 of these, and a message or two read meanwhile);
      // the call's own bound (16 answers, ~3 MB here) was the only one before.
      expect(n.contexts.length).toBeGreaterThan(0);
      expect(n.contexts.length).toBeLessThanOrEqual(9);
    } finally {
      client.close();
      await e.drain(1000);
    }
  });

  test("a timeout_ms over 60000 is INVALID_ARGUMENT naming it (3,000,000,000 overflowed the timer: DEADLINE_EXCEEDED at once)", async () => {
    const call = (clients.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: { status: number; path: string } | null }> }).LookupStream();
    const answers: { id: string; error: { status: number; path: string } | null }[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (a) => answers.push(a));
      call.on("end", () => resolve());
      call.on("error", reject);
    });
    call.write({ ...lookup, id: "1", timeout_ms: 3_000_000_000 });
    call.write({ ...lookup, id: "2", timeout_ms: 60_001 });
    call.write({ ...lookup, id: "3", timeout_ms: 60_000 });
    call.end();
    await ended;
    answers.sort((a, b) => a.id.localeCompare(b.id));
    expect(answers.map((a) => [a.id, a.error?.status ?? 0, a.error?.path ?? ""])).toEqual([
      ["1", grpc.status.INVALID_ARGUMENT, "timeout_ms"],
      ["2", grpc.status.INVALID_ARGUMENT, "timeout_ms"],
      ["3", 0, ""],
    ]);
  });

  test("a per-message timeout_ms bounds that lookup only", async () => {
    const release = stall(node);
    try {
      const call = (clients.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: { status: number } | null }> }).LookupStream();
      const answers: { id: string; error: { status: number } | null }[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (a) => answers.push(a));
        call.on("end", () => resolve());
        call.on("error", reject);
      });
      call.write({ ...lookup, id: "1", timeout_ms: 100 });
      call.end();
      await ended;
      expect(answers).toEqual([expect.objectContaining({ id: "1", error: expect.objectContaining({ status: grpc.status.DEADLINE_EXCEEDED }) })]);
    } finally {
      release();
    }
  });
});

describe("health and reflection", () => {
  test("Check follows readiness; unknown services are NOT_FOUND", async () => {
    expect((await unaryCall(clients.health, "Check", { service: "" })).response).toEqual({ status: "SERVING" });
    expect((await unaryCall(clients.health, "Check", { service: "quiver.v1.FeatureService" })).response).toEqual({ status: "SERVING" });
    node.healthy = false;
    try {
      expect((await unaryCall(clients.health, "Check", { service: "feast.serving.ServingService" })).response).toEqual({ status: "NOT_SERVING" });
    } finally {
      node.healthy = true;
    }
    expect((await unaryCall(clients.health, "Check", { service: "nope.Service" })).error?.code).toBe(grpc.status.NOT_FOUND);
    // Bytes that are no HealthCheckRequest were read as service "" and answered SERVING.
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      const garbage = Buffer.from([0x7f, 0x01, 0x02]);
      const error = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, garbage, new grpc.Metadata(), {}, (e) => resolve(e));
      });
      expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      const watch = raw.makeServerStreamRequest("/grpc.health.v1.Health/Watch", (b: Buffer) => b, (b: Buffer) => b, garbage, new grpc.Metadata(), {});
      const watched = await new Promise<number | undefined>((resolve) => {
        watch.on("data", () => resolve(-1));
        watch.on("error", (e: grpc.ServiceError) => resolve(e.code));
      });
      expect(watched).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      raw.close();
    }
  });

  test("Watch sends the status, then each change", async () => {
    const call = (clients.health as unknown as { Watch(r: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: "" });
    const seen: string[] = [];
    const waitFor = async (n: number) => {
      for (let i = 0; i < 400 && seen.length < n; i++) await Bun.sleep(10);
    };
    call.on("data", (m) => seen.push(m.status));
    call.on("error", () => {});
    await waitFor(1);
    node.healthy = false;
    await waitFor(2);
    node.healthy = true;
    await waitFor(3);
    call.cancel();
    expect(seen.slice(0, 3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    const unknown = (clients.health as unknown as { Watch(r: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: "nope" });
    const first = await new Promise<string>((resolve) => unknown.on("data", (m) => resolve(m.status)));
    unknown.cancel();
    unknown.on("error", () => {});
    expect(first).toBe("SERVICE_UNKNOWN");
  });

  test("reflection lists every service by its protobuf name and finds the package-less GrpcFeatureServer's symbols (v1 and v1alpha)", async () => {
    for (const version of ["v1", "v1alpha"] as const) {
      const def = loadSync(`grpc/reflection/${version}/reflection.proto`, { keepCase: true, includeDirs: [`${import.meta.dir}/../node_modules/@grpc/reflection/build/proto`] });
      type Reply = { list_services_response?: { service: { name: string }[] }; file_descriptor_response?: { file_descriptor_proto: Buffer[] }; error_response?: { error_code: number } };
      const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: Record<string, { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => grpc.Client }> } };
      const client = new pkg.grpc.reflection[version]!.ServerReflection(address, grpc.credentials.createInsecure());
      const ask = async (request: Record<string, string>): Promise<Reply> => {
        const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, Reply> }).ServerReflectionInfo();
        const reply = new Promise<Reply>((resolve, reject) => {
          call.on("data", resolve);
          call.on("error", reject);
        });
        call.write(request);
        const got = await reply;
        call.end();
        return got;
      };
      try {
        const names = (await ask({ list_services: "" })).list_services_response!.service.map((s) => s.name);
        // @grpc/reflection listed it as ".GrpcFeatureServer".
        expect(names).toEqual(expect.arrayContaining(["feast.serving.ServingService", "GrpcFeatureServer", "quiver.v1.FeatureService", "grpc.health.v1.Health"]));
        expect(names.filter((n) => n.startsWith("."))).toEqual([]);
        for (const symbol of ["GrpcFeatureServer", "GrpcFeatureServer.Push", "PushRequest", "feast.serving.ServingService"]) {
          const reply = await ask({ file_containing_symbol: symbol });
          expect([version, symbol, reply.error_response?.error_code, (reply.file_descriptor_response?.file_descriptor_proto.length ?? 0) > 0]).toEqual([version, symbol, undefined, true]);
        }
      } finally {
        client.close();
      }
    }
  });

  test("health answers for the reflection services too", async () => {
    for (const service of ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "GrpcFeatureServer"]) {
      expect((await unaryCall(clients.health, "Check", { service })).response).toEqual({ status: "SERVING" });
    }
  });
});

describe("graceful drain", () => {
  test("in-flight calls finish, health turns NOT_SERVING, new calls are refused", async () => {
    const n = new ScriptedNode();
    let release = () => {};
    n.hold = new Promise<void>((r) => {
      release = r;
    });
    const push = new PushService(n, { maxFutureSkewMs: 0 }, () => NOW);
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(n, () => NOW), push, { maxRows: 10, maxValues: 100_000 });
    const e = createGrpcEdge({ serving, metrics: new MetricsRegistry(), ready: async () => true, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000 } });
    const addr = `127.0.0.1:${await e.listen("127.0.0.1", 0)}`;
    const c = connect(addr);
    const inflight = unaryCall(c.quiver, "Lookup", lookup, { deadlineMs: 30_000 });
    for (let i = 0; i < 500 && n.contexts.length === 0; i++) await Bun.sleep(10);
    expect(n.contexts).toHaveLength(1); // the call is in storage
    const drained = e.drain(10_000);
    const after = await unaryCall(c.quiver, "Lookup", lookup, { deadlineMs: 2000 });
    expect(after.error).toBeDefined();
    release();
    const first = await inflight;
    expect(first.error).toBeUndefined();
    await drained;
    c.close();
  });
});

describe("graceful drain with Watch streams open", () => {
  test("every Watch stream ends, an unknown service's too, so watchers do not hold a draining server open", async () => {
    const n = new ScriptedNode();
    const push = new PushService(n, { maxFutureSkewMs: 0 }, () => NOW);
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(n, () => NOW), push, { maxRows: 10, maxValues: 100_000 });
    const e = createGrpcEdge({ serving, metrics: new MetricsRegistry(), ready: async () => true, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000 } });
    const c = connect(`127.0.0.1:${await e.listen("127.0.0.1", 0)}`);
    const watch = (service: string) => {
      const call = (c.health as unknown as { Watch(r: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({ service });
      const seen: string[] = [];
      call.on("data", (m) => seen.push(m.status));
      const ended = new Promise<string>((resolve) => {
        call.on("end", () => resolve("end"));
        call.on("error", (err: grpc.ServiceError) => resolve(`error ${err.code}`));
      });
      return { seen, ended };
    };
    const whole = watch("");
    const unknown = watch("nope");
    for (let i = 0; i < 400 && (whole.seen.length === 0 || unknown.seen.length === 0); i++) await Bun.sleep(10);
    expect([whole.seen[0], unknown.seen[0]]).toEqual(["SERVING", "SERVICE_UNKNOWN"]);
    // A 60 s grace: a stream left open would hold the drain that long; ended, the server shuts down at once.
    const drained = e.drain(60_000).then(() => "drained");
    const outcome = await Promise.race([drained, Bun.sleep(20_000).then(() => "still open after 20 s")]);
    expect(outcome).toBe("drained");
    expect(await whole.ended).toBe("end");
    expect(await unknown.ended).toBe("end");
    c.close();
  }, 60_000);
});

describe("admission control", () => {
  test("a degraded answer counts against admission as HTTP's does, on unary calls (Quiver's and Feast's) and on LookupStream", async () => {
    const n = new ScriptedNode();
    const push = new PushService(n, { maxFutureSkewMs: 3_600_000 }, () => NOW);
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(n, () => NOW), push, { maxRows: 10, maxValues: 100_000 });
    const admission = new AdaptiveAdmission({ fixedLimit: 8, queue: 0 });
    const e = createGrpcEdge({ serving, metrics: new MetricsRegistry(), ready: async () => true, admission, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000 } });
    const c = connect(`127.0.0.1:${await e.listen("127.0.0.1", 0)}`);
    const streamed = async () => {
      const stream = (c.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; degraded: string[] }> }).LookupStream();
      const answer = new Promise<{ id: string; degraded: string[] }>((resolve, reject) => {
        stream.on("data", resolve);
        stream.on("error", reject);
      });
      stream.write({ ...lookup, id: "3" });
      const a = await answer;
      stream.end();
      return a;
    };
    try {
      expect((await unaryCall(c.quiver, "Lookup", lookup)).error).toBeUndefined();
      expect(await streamed()).toMatchObject({ id: "3", degraded: [] });
      expect(admission.takeInterval()).toMatchObject({ completed: 2, failed: 0 });
      n.mode = "down";
      const q = await unaryCall(c.quiver, "Lookup", lookup);
      expect(q.headers["x-quiver-degraded"]).toBe("shard-b");
      const f = await unaryCall(c.feast, "GetOnlineFeatures", feastLookup);
      expect(f.headers["x-quiver-degraded"]).toBe("shard-b");
      expect(await streamed()).toMatchObject({ id: "3", degraded: ["shard-b"] });
      expect(admission.takeInterval()).toMatchObject({ completed: 3, failed: 3 });
    } finally {
      c.close();
      await e.drain(2000);
    }
  });

  test("beyond the shared concurrency limit a lookup answers RESOURCE_EXHAUSTED, on unary calls and on LookupStream, counted and noted as HTTP's refusals are", async () => {
    const n = new ScriptedNode();
    let release = () => {};
    n.hold = new Promise<void>((r) => {
      release = r;
    });
    const push = new PushService(n, { maxFutureSkewMs: 0 }, () => NOW);
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(n, () => NOW), push, { maxRows: 10, maxValues: 100_000 });
    const admission = new AdaptiveAdmission({ fixedLimit: 1, queue: 0 });
    const metrics = new MetricsRegistry();
    const anomalies = new AnomalyBuffer();
    const e = createGrpcEdge({ serving, metrics, ready: async () => true, admission, sheds: new ShedRecorder(metrics, anomalies), limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000 } });
    const c = connect(`127.0.0.1:${await e.listen("127.0.0.1", 0)}`);
    try {
      const first = unaryCall(c.quiver, "Lookup", lookup, { deadlineMs: 30_000 });
      for (let i = 0; i < 500 && n.contexts.length === 0; i++) await Bun.sleep(10);
      expect(admission.snapshot().inFlight).toBe(1);
      const shed = await unaryCall(c.quiver, "Lookup", lookup);
      expect(shed.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(shed.error?.metadata.get("x-quiver-retryable")[0]).toBe("true");
      const stream = (c.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, { id: string; error: { status: number } | null }> }).LookupStream();
      const answer = new Promise<{ id: string; error: { status: number } | null }>((resolve, reject) => {
        stream.on("data", resolve);
        stream.on("error", reject);
      });
      stream.write({ ...lookup, id: "9" });
      expect(await answer).toMatchObject({ id: "9", error: { status: grpc.status.RESOURCE_EXHAUSTED } });
      stream.end();
      // In the series HTTP's refusals are in, by method and reason, and in the anomaly buffer.
      const text = await metrics.render();
      expect(text).toContain('quiver_admission_shed_total{route="quiver.v1.FeatureService/Lookup",reason="concurrency_limit"} 1');
      expect(text).toContain('quiver_admission_shed_total{route="quiver.v1.FeatureService/LookupStream",reason="concurrency_limit"} 1');
      expect(text).not.toContain('route="quiver.v1.FeatureService/Push"');
      expect(anomalies.query({ kind: "shed" }).map((a) => [a.subject, a.reason, a.count]).sort()).toEqual([
        ["quiver.v1.FeatureService/Lookup", "concurrency_limit", 1],
        ["quiver.v1.FeatureService/LookupStream", "concurrency_limit", 1],
      ]);
      // Health and serving info are never shed.
      expect((await unaryCall(c.health, "Check", { service: "" })).response).toEqual({ status: "SERVING" });
      expect((await unaryCall(c.feast, "GetFeastServingInfo", {})).error).toBeUndefined();
      release();
      expect((await first).error).toBeUndefined();
      expect(admission.snapshot().inFlight).toBe(0);
      expect((await unaryCall(c.quiver, "Lookup", lookup)).error).toBeUndefined();
    } finally {
      release();
      c.close();
      await e.drain(2000);
    }
  });
});

describe("behind an L1 cache tier", () => {
  test("a lookup with some keys in L1 reads only the others and answers what the uncached edge answers; a shard down still flags them", async () => {
    // The same rows in two stores: one behind L1, one read directly (the decoding path's answers, to compare with).
    const n = new ScriptedNode();
    const plain = new ScriptedNode();
    const view = registry.views.get("stats")!;
    const rates: Record<number, number> = { 1: 0.5, 2: 0.75 };
    const pushTo = (store: KvNode) => new PushService(store, { maxFutureSkewMs: 3_600_000 }, () => NOW);
    const push = pushTo(n);
    for (const p of [push, pushTo(plain)]) await p.write(p.prepare(view, { rowCount: 2, keyNames: ["driver_id"], value: (r, k) => (k === "driver_id" ? r + 1 : k === "rate" ? rates[r + 1] : undefined), pathOf: (_r, k) => k }, []));
    const l1 = new L1Cache({ maxBytes: 1 << 20, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, clock: () => NOW });
    const tier = new CacheTier(n, { l1, feed: new LocalChangeFeed("pod"), metrics: cacheMetrics(new MetricsRegistry({ defaultMetrics: false })), clock: () => NOW });
    const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(tier, () => NOW), push, { maxRows: 100, maxValues: 100_000 });
    const e = createGrpcEdge({ serving, metrics: new MetricsRegistry(), ready: async () => true, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, lookupTimeoutMs: 250 }, healthIntervalMs: 20 });
    const c = connect(`127.0.0.1:${await e.listen("127.0.0.1", 0)}`);
    const reference = createGrpcEdge({ serving: new FeatureServing(new RegistryHolder(registry), new LookupService(plain, () => NOW), push, { maxRows: 100, maxValues: 100_000 }), metrics: new MetricsRegistry(), ready: async () => true, limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, lookupTimeoutMs: 250 }, healthIntervalMs: 20 });
    const r = connect(`127.0.0.1:${await reference.listen("127.0.0.1", 0)}`);
    try {
      const three = { features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: ["1", "2", "3"] }] };
      const feastThree = { features: { val: ["stats:rate"] }, entities: { driver_id: { val: [{ int64_val: "1" }, { int64_val: "2" }, { int64_val: "3" }] } } };
      // Driver 1 in L1; 2 and 3 (no row) read through.
      await unaryCall(c.quiver, "Lookup", { ...lookup, entities: [{ name: "driver_id", int64_values: ["1"] }] });
      const reads = n.contexts.length;
      const q = await unaryCall(c.quiver, "Lookup", three);
      expect(n.contexts.length).toBe(reads + 1);
      expect(q.response).toEqual((await unaryCall(r.quiver, "Lookup", three)).response);
      expect(q.response).toMatchObject({ columns: [{ statuses: ["PRESENT", "PRESENT", "NOT_FOUND"], double_values: [0.5, 0.75, 0.25] }] });
      // Feast: 1 and 2 in L1 now, 3 cached as absent for the negative TTL; a new key 4 is read through.
      const four = { ...feastThree, entities: { driver_id: { val: [...feastThree.entities.driver_id.val, { int64_val: "4" }] } } };
      const f = await unaryCall(c.feast, "GetOnlineFeatures", four);
      expect(f.response).toEqual((await unaryCall(r.feast, "GetOnlineFeatures", four)).response);
      // A key L1 lacks whose shard is down: its value is flagged, as the uncached edge flags it.
      n.mode = "down";
      plain.mode = "down";
      const five = { features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: ["1", "5"] }] };
      const down = await unaryCall<{ columns: { statuses: string[] }[] }>(c.quiver, "Lookup", five);
      expect(down.response!.columns[0]!.statuses).toEqual(["PRESENT", "UNAVAILABLE"]);
      expect(down.headers["x-quiver-degraded"]).toBe("shard-b");
    } finally {
      c.close();
      r.close();
      await e.drain(1000);
      await reference.drain(1000);
      await tier.close();
    }
  });
});
