import { expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import type { MethodMetrics } from "./call.ts";
import { OpenStreams, type QuiverLookupRequest, QuiverGrpcService } from "./quiver-service.ts";

const METRICS: MethodMetrics = { latency: { observe() {} } as never, count() {}, shed() {}, overdue() {} };

/** A stand-in LookupStream call: records how it ended. */
function fakeCall() {
  const ends: string[] = [];
  const call = Object.assign(new EventEmitter(), {
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
  call.on("error", (e: { code: number }) => ends.push(`error ${e.code}`));
  return { call, ends };
}

test("a LookupStream whose handler starts after the drain began is ended too, not left to hold the drain", () => {
  const service = new QuiverGrpcService({} as never, 50);
  const open = new OpenStreams();
  const first = fakeCall();
  service.lookupStream(first.call as never, METRICS, undefined, undefined, undefined, open);
  open.drain();
  expect(first.ends).toEqual(["error 14"]);
  // A stream whose handler ran after drain() (its headers were in before the GOAWAY; an interceptor ran first):
  // nothing told it to stop, and tryShutdown waited for it until the grace ran out and dropped the connection.
  const late = fakeCall();
  service.lookupStream(late.call as never, METRICS, undefined, undefined, undefined, open);
  expect(late.ends).toEqual(["error 14"]);
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
