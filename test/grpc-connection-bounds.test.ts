import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createGrpcEdge, type GrpcEdge, type GrpcLimits } from "../src/api/grpc/index.ts";
import type { BoundTimers } from "../src/api/work-bounds.ts";
import type { KvNode } from "../src/kv/kv-node.ts";
import { MemoryKvNode } from "../src/kv/memory-node.ts";
import { MetricsRegistry } from "../src/ops/metrics.ts";
import { RegistryHolder } from "../src/registry/index.ts";
import { compileRegistry } from "../src/registry/read-definitions.ts";
import { FeatureServing, LookupService, PushService } from "../src/serving/index.ts";
import { type Clients, connect, grpc, unaryCall } from "./support/grpc-client.ts";
import { FakeTimers } from "./support/fake-timers.ts";
import { HungNode } from "./support/hung-node.ts";
import { until } from "./support/raw-grpc-call.ts";

// Real servers on a shared 2-core machine: generous limits, no assertion on speed.
setDefaultTimeout(60_000);

/**
 * Connections and streams that would otherwise live for good. Behind an L4
 * load balancer a gRPC client keeps its one connection: pods added later got
 * none of its calls. A connection past --grpc-max-connection-age is told to go
 * away (grpc-js's GOAWAY); its open LookupStreams are ended by the server once
 * their read lookups are answered, so they move too; what is left at the
 * grace is cut. A LookupStream that sends nothing for --grpc-stream-idle is
 * ended. Connection bounds run on grpc-js's own timers (short ones here; the
 * tests wait for the event, not a time); the stream checks run on the test's
 * fake clock where it can drive them.
 */

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const registry = compileRegistry({
  entities: [{ name: "driver", joinKeys: [{ name: "driver_id", type: "int64" }] }],
  featureViews: [{ name: "stats", entities: ["driver"], features: [{ name: "rate", type: "float64", default: 0.25 }] }],
});

interface Answer {
  readonly id: string;
  readonly error: { status: number } | null;
}

/** A LookupStream from a grpc-js client, with what it was answered and how it ended. */
interface Streamed {
  readonly call: grpc.ClientDuplexStream<unknown, Answer>;
  readonly answers: Answer[];
  status: grpc.StatusObject | undefined;
}

const lookup = (id: number) => ({ features: ["stats:rate"], entities: [{ name: "driver_id", int64_values: [String(id)] }], id: String(id) });

function openStream(clients: Clients): Streamed {
  const call = (clients.quiver as unknown as { LookupStream(): grpc.ClientDuplexStream<unknown, Answer> }).LookupStream();
  const s: Streamed = { call, answers: [], status: undefined };
  call.on("data", (a: Answer) => s.answers.push(a));
  call.on("status", (st: grpc.StatusObject) => {
    s.status = st;
  });
  call.on("error", () => {});
  return s;
}

/** Every connectivity state `channel` goes through from now on (READY, IDLE, …). */
function states(channel: ReturnType<grpc.Client["getChannel"]>): grpc.connectivityState[] {
  const seen: grpc.connectivityState[] = [channel.getConnectivityState(false)];
  const watch = () => {
    const last = seen[seen.length - 1]!;
    if (last === grpc.connectivityState.SHUTDOWN) return;
    channel.watchConnectivityState(last, Date.now() + 60_000, (error) => {
      if (error === undefined) seen.push(channel.getConnectivityState(false));
      watch();
    });
  };
  watch();
  return seen;
}

/** `seen` went READY and then left it for IDLE or CONNECTING (a GOAWAY), never through TRANSIENT_FAILURE. */
function leftReady(seen: readonly grpc.connectivityState[]): boolean {
  const ready = seen.indexOf(grpc.connectivityState.READY);
  const after = ready < 0 ? [] : seen.slice(ready + 1);
  return !seen.includes(grpc.connectivityState.TRANSIENT_FAILURE) && (after.includes(grpc.connectivityState.IDLE) || after.includes(grpc.connectivityState.CONNECTING));
}

const trailer = (st: grpc.StatusObject | undefined, name: string) => st?.metadata.get(name)[0];

const open: { edge: GrpcEdge; clients: Clients }[] = [];

async function start(limits: Partial<GrpcLimits>, timers?: BoundTimers, node: KvNode = new MemoryKvNode("m")) {
  const serving = new FeatureServing(new RegistryHolder(registry), new LookupService(node, () => NOW), new PushService(node, { maxFutureSkewMs: 3_600_000 }, () => NOW), {
    maxRows: 100,
    maxValues: 100_000,
  });
  const metrics = new MetricsRegistry({ defaultMetrics: false });
  const edge = createGrpcEdge({
    serving,
    metrics,
    ready: async () => true,
    healthIntervalMs: 50,
    ...(timers === undefined ? {} : { timers }),
    limits: { maxMessageBytes: 1 << 20, keepaliveMs: 60_000, keepaliveTimeoutMs: 20_000, ...limits },
  });
  const port = await edge.listen("127.0.0.1", 0);
  const clients = connect(`127.0.0.1:${port}`);
  open.push({ edge, clients });
  const ended = async (reason: string) => Number(new RegExp(`^quiver_grpc_streams_ended_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(await metrics.render())?.[1] ?? 0);
  /** A metric without labels, NaN when absent. */
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(await metrics.render())?.[1] ?? Number.NaN);
  return { edge, clients, ended, metric };
}

afterAll(async () => {
  for (const { edge, clients } of open) {
    clients.close();
    await edge.drain(1000);
  }
});

describe("LookupStreams that send nothing", () => {
  const IDLE_MS = 400;

  test("are ended UNAVAILABLE (stream_idle) once quiet for --grpc-stream-idle; one that keeps sending is not", async () => {
    // Frozen: the streams' quiet time is the test's clock alone. On one that also ran with the real clock, the busy stream
    // was ended idle whenever the machine took 160 ms between its answer and the next step (here, with the pause below).
    const timers = new FakeTimers({ frozen: true });
    const { clients, ended } = await start({ streamIdleMs: IDLE_MS }, timers);
    const quiet = openStream(clients);
    const busy = openStream(clients);
    quiet.call.write(lookup(1));
    busy.call.write(lookup(1));
    expect(await until(() => quiet.answers.length === 1 && busy.answers.length === 1)).toBe(true);
    // The clock moves 0.6 of the bound between the busy stream's lookups: 2.4 bounds in all.
    for (let i = 2; i <= 5; i++) {
      // Real time passing between lookups (a loaded machine's) is not the stream's quiet time: only the test's clock is.
      await Bun.sleep(IDLE_MS / 2);
      timers.advance(IDLE_MS * 0.6);
      busy.call.write(lookup(i));
      expect(await until(() => busy.answers.length === i)).toBe(true);
    }
    expect(await until(() => quiet.status !== undefined)).toBe(true);
    expect(quiet.status!.code).toBe(grpc.status.UNAVAILABLE);
    expect(quiet.status!.details).toContain("--grpc-stream-idle");
    expect(trailer(quiet.status, "x-quiver-error-code")).toBe("stream_idle");
    expect(trailer(quiet.status, "x-quiver-retryable")).toBe("true");
    expect(quiet.answers).toHaveLength(1);
    // The busy stream was never quiet for the bound: it is open, answers, and ends OK when its client ends it.
    expect(busy.status).toBeUndefined();
    busy.call.write(lookup(6));
    busy.call.end();
    expect(await until(() => busy.status !== undefined)).toBe(true);
    expect(busy.status!.code).toBe(grpc.status.OK);
    expect(busy.answers.map((a) => a.id)).toEqual(["1", "2", "3", "4", "5", "6"]);
    expect(busy.answers.every((a) => a.error === null)).toBe(true);
    expect(await ended("idle")).toBe(1);
    // The client may open it again.
    const again = openStream(clients);
    again.call.write(lookup(7));
    again.call.end();
    expect(await until(() => again.status !== undefined)).toBe(true);
    expect([again.status!.code, again.answers.length]).toEqual([grpc.status.OK, 1]);
  });
});

describe("connections past --grpc-max-connection-age", () => {
  test("are told to go away: the client moves to a new connection, and an open LookupStream ends UNAVAILABLE (connection_closing) with its lookups answered", async () => {
    // A grace far longer than the test: the stream's end is the server's doing, not the connection being cut.
    const { clients, ended, metric } = await start({ maxConnectionAgeMs: 1000, maxConnectionAgeGraceMs: 120_000 });
    const seen = states(clients.quiver.getChannel());
    expect((await unaryCall(clients.quiver, "Lookup", lookup(1))).error).toBeUndefined();
    expect(await metric("quiver_grpc_connections_accepted_total")).toBeGreaterThanOrEqual(1);
    const stream = openStream(clients);
    for (let i = 1; i <= 3; i++) stream.call.write(lookup(i));
    expect(await until(() => stream.status !== undefined)).toBe(true);
    expect(stream.status!.code).toBe(grpc.status.UNAVAILABLE);
    expect(trailer(stream.status, "x-quiver-error-code")).toBe("connection_closing");
    expect(trailer(stream.status, "x-quiver-retryable")).toBe("true");
    expect(stream.answers.map((a) => a.id).sort()).toEqual(["1", "2", "3"]);
    // The GOAWAY took the client's channel out of READY, with no call failed; its next call opens a new connection.
    expect(await until(() => leftReady(seen))).toBe(true);
    expect(await ended("connection_closing")).toBeGreaterThanOrEqual(1);
    // The first connection, its stream ended, has gone; the channel (IDLE) opens none until its next call. Looked at
    // here, not once the next call has opened one: that one is told to go away in turn about a second later, and a
    // machine that took longer to look saw no moment with one connection open.
    expect(await until(async () => (await metric("quiver_grpc_connections")) === 0)).toBe(true);
    expect((await unaryCall(clients.quiver, "Lookup", lookup(2))).error).toBeUndefined();
    // As slow a machine as that: the next connection may age out too, without failing the test.
    await Bun.sleep(1200);
    expect(await metric("quiver_grpc_connections_accepted_total")).toBeGreaterThanOrEqual(2);
  });

  test("are closed at the end of the grace, cutting a call still running; a health Watch on it is ended first", async () => {
    // Storage that never answers: a Lookup without a deadline runs for a minute (its work bound), past the grace.
    const node = new HungNode();
    node.hung = true;
    const { clients } = await start({ maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 5000 }, undefined, node);
    const watch = (clients.health as unknown as { Watch(req: unknown): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: "" });
    const watched: { serving: boolean; status?: grpc.StatusObject } = { serving: false };
    watch.on("data", (m: { status: string }) => {
      watched.serving ||= m.status === "SERVING";
    });
    watch.on("status", (st: grpc.StatusObject) => {
      watched.status = st;
    });
    watch.on("error", () => {});
    const hung = unaryCall(clients.quiver, "Lookup", lookup(1));
    let cut: Awaited<typeof hung> | undefined;
    void hung.then((o) => {
      cut = o;
    });
    expect(await until(() => watched.status !== undefined)).toBe(true);
    // Ended by the server when its connection was told to go away, as at a drain: not cut with the connection.
    expect([watched.serving, watched.status!.code]).toEqual([true, grpc.status.OK]);
    expect(await until(() => cut !== undefined)).toBe(true);
    // What grpc-js (on Bun) makes of the connection closed under its call: INTERNAL, "Received RST_STREAM with code 0".
    expect(cut!.error?.code).toBeDefined();
    expect(cut!.error!.code).not.toBe(grpc.status.OK);
    expect(node.reads).toBe(1);
  });
});

describe("connections without a call for --grpc-max-connection-idle", () => {
  test("are closed; the client's next call opens a new one", async () => {
    const { clients } = await start({ maxConnectionIdleMs: 300 });
    const seen = states(clients.quiver.getChannel());
    expect((await unaryCall(clients.quiver, "Lookup", lookup(1))).error).toBeUndefined();
    expect(await until(() => leftReady(seen))).toBe(true);
    expect((await unaryCall(clients.quiver, "Lookup", lookup(2))).error).toBeUndefined();
  });
});
