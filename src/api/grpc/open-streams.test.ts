import { expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import type { MethodMetrics } from "./call.ts";
import { FakeTimers } from "../../../test/support/fake-timers.ts";
import { OpenStreams, type StreamEndReason } from "./open-streams.ts";
import { type QuiverLookupRequest, QuiverGrpcService } from "./quiver-service.ts";

const METRICS: MethodMetrics = { latency: { observe() {} } as never, count() {}, shed() {}, overdue() {} };

/** A stand-in LookupStream call on a stand-in connection (grpc-js 1.14's call.stream.session): records how it ended. */
function fakeCall(session = { closed: false }) {
  const ends: string[] = [];
  const call = Object.assign(new EventEmitter(), {
    call: { stream: { session } },
    cancelled: false,
    getDeadline: () => Number.POSITIVE_INFINITY,
    pause() {},
    resume() {},
    end() {
      ends.push("ok");
    },
    write: (_bytes: Uint8Array, cb?: () => void) => {
      cb?.();
      return true;
    },
  });
  call.on("error", (e: { code: number; metadata?: { get(k: string): unknown[] } }) => {
    const code = e.metadata?.get("x-quiver-error-code")[0];
    ends.push(code === undefined ? `error ${e.code}` : `error ${e.code} ${code}`);
  });
  return { call, ends };
}

test("a LookupStream whose handler starts after the drain began is ended too, not left to hold the drain", () => {
  const service = new QuiverGrpcService({} as never, 50);
  const open = new OpenStreams();
  const first = fakeCall();
  service.lookupStream(first.call as never, METRICS, undefined, undefined, undefined, open);
  open.drain();
  expect(first.ends).toEqual(["error 14 shutting_down"]);
  // A stream whose handler ran after drain() (its headers were in before the GOAWAY; an interceptor ran first):
  // nothing told it to stop, and tryShutdown waited for it until the grace ran out and dropped the connection.
  const late = fakeCall();
  service.lookupStream(late.call as never, METRICS, undefined, undefined, undefined, open);
  expect(late.ends).toEqual(["error 14 shutting_down"]);
  expect(open.size).toBe(0);
});

test("a LookupStream its client half-closed, with lookups still running when the drain begins, ends OK once they are answered", async () => {
  let answer: (bytes: Uint8Array) => void = () => {};
  const serving = {
    planLookup: () => ({ query: { refs: [] }, fullFeatureNames: false }),
    lookupRaw: () => undefined,
    lookupRest: () =>
      new Promise<Uint8Array>((resolve) => {
        answer = resolve;
      }),
  };
  const service = new QuiverGrpcService(serving as never, 50);
  const open = new OpenStreams();
  const { call, ends } = fakeCall();
  service.lookupStream(call as never, METRICS, undefined, undefined, undefined, open);
  const req: QuiverLookupRequest = { features: ["v:f"], feature_service: "", entities: [{ name: "k", int64_values: [1], string_values: [] }], full_feature_names: false, id: 7, timeout_ms: 0 };
  call.emit("data", req);
  // The client sent its last lookup and half-closed: every message it sent was read.
  call.emit("end");
  open.drain();
  answer(new Uint8Array());
  await Bun.sleep(0);
  // It was told UNAVAILABLE "open the stream again" after all its answers: a client that takes a non-OK status
  // as the batch failing sent every lookup again (README: a client that half-closed first gets its OK).
  expect(ends).toEqual(["ok"]);
});

test("a LookupStream whose connection is told to go away is ended at the next check, once its read lookups are answered; one its client half-closed ends OK", async () => {
  let answer: (bytes: Uint8Array) => void = () => {};
  const serving = {
    planLookup: () => ({ query: { refs: [] }, fullFeatureNames: false }),
    lookupRaw: () => undefined,
    lookupRest: () =>
      new Promise<Uint8Array>((resolve) => {
        answer = resolve;
      }),
  };
  const service = new QuiverGrpcService(serving as never, 50);
  const timers = new FakeTimers();
  const counted: StreamEndReason[] = [];
  const open = new OpenStreams({ timers, checkMs: 1000, onEnded: (r) => counted.push(r) });
  const session = { closed: false };
  const busy = fakeCall(session);
  const halfClosed = fakeCall(session);
  const elsewhere = fakeCall();
  for (const c of [busy, halfClosed, elsewhere]) service.lookupStream(c.call as never, METRICS, undefined, undefined, undefined, open);
  const req: QuiverLookupRequest = { features: ["v:f"], feature_service: "", entities: [{ name: "k", int64_values: [1], string_values: [] }], full_feature_names: false, id: 7, timeout_ms: 0 };
  busy.call.emit("data", req);
  halfClosed.call.emit("end");
  timers.advance(1000);
  expect([busy.ends, halfClosed.ends, elsewhere.ends]).toEqual([[], ["ok"], []]);
  // grpc-js sent the GOAWAY (max connection age) and closed the session.
  session.closed = true;
  timers.advance(1000);
  // Not before its lookup is answered.
  expect(busy.ends).toEqual([]);
  answer(new Uint8Array());
  await Bun.sleep(0);
  expect([busy.ends, elsewhere.ends]).toEqual([["error 14 connection_closing"], []]);
  expect(counted).toEqual(["connection_closing"]);
  expect(open.size).toBe(1);
});

test("a grpc-js whose stream call is not the one read here is said once; its streams are still ended when idle", () => {
  const warnings: string[] = [];
  const timers = new FakeTimers();
  const open = new OpenStreams({ timers, idleMs: 5000, checkMs: 1000, warn: (m) => warnings.push(m) });
  const service = new QuiverGrpcService({} as never, 50);
  const calls = [fakeCall(), fakeCall()];
  for (const c of calls) {
    (c.call as { call: unknown }).call = {};
    service.lookupStream(c.call as never, METRICS, undefined, undefined, undefined, open);
  }
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain("open-streams.ts");
  timers.advance(4000);
  expect(calls.map((c) => c.ends)).toEqual([[], []]);
  timers.advance(2000);
  expect(calls.map((c) => c.ends)).toEqual([["error 14 stream_idle"], ["error 14 stream_idle"]]);
  expect(open.size).toBe(0);
});
