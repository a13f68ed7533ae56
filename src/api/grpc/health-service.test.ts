import { expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { until } from "../../../test/support/raw-grpc-call.ts";
import { HealthService } from "./health-service.ts";

/** A stand-in Watch call on a stand-in connection (grpc-js 1.14's call.stream.session): records what it was sent. */
function watchCall(session: { closed: boolean }) {
  const sent: string[] = [];
  const call = Object.assign(new EventEmitter(), {
    request: { service: "" },
    call: { stream: { session } },
    write(m: { status: number }) {
      sent.push(`status ${m.status}`);
      return true;
    },
    end() {
      sent.push("end");
    },
  });
  return { call, sent };
}

test("a Watch whose connection is told to go away before its first look sends the current status, then ends", async () => {
  const health = new HealthService({ services: [], ready: async () => true, watchIntervalMs: 60_000 });
  // A Watch the client sent just before the server's GOAWAY (max connection age) reached it: its handler runs with the
  // connection closing already. The protocol's Watch answers the current status first; it was ended with none.
  const { call, sent } = watchCall({ closed: true });
  health.watch(call as never);
  expect(await until(() => sent.includes("end"), 5000)).toBe(true);
  expect(sent).toEqual(["status 1", "end"]);
});

test("a Watch whose connection is told to go away later ends at its next look, its status sent once", async () => {
  const health = new HealthService({ services: [], ready: async () => true, watchIntervalMs: 5 });
  const session = { closed: false };
  const { call, sent } = watchCall(session);
  health.watch(call as never);
  expect(await until(() => sent.length === 1, 5000)).toBe(true);
  session.closed = true;
  expect(await until(() => sent.includes("end"), 5000)).toBe(true);
  expect(sent).toEqual(["status 1", "end"]);
});

test("a Watch ended by a shutdown without a delay is told NOT_SERVING before its end", async () => {
  // grpc-edge's drain calls drain() then closeWatches() at once: the tick drain() wakes has not run when the Watch
  // is ended, and it had been told SERVING last. Its client saw the stream end with SERVING as the last word.
  const health = new HealthService({ services: [], ready: async () => true, watchIntervalMs: 60_000 });
  const { call, sent } = watchCall({ closed: false });
  health.watch(call as never);
  expect(await until(() => sent.length === 1, 5000)).toBe(true);
  health.drain();
  health.closeWatches();
  expect(sent).toEqual(["status 1", "status 2", "end"]);
  // The tick the drain woke finds the Watch stopped and sends nothing more.
  await Bun.sleep(10);
  expect(sent).toEqual(["status 1", "status 2", "end"]);
});

test("a Watch ended by the drain before its first look sends NOT_SERVING, once", async () => {
  const health = new HealthService({ services: [], ready: async () => true, watchIntervalMs: 60_000 });
  const { call, sent } = watchCall({ closed: false });
  health.watch(call as never);
  health.drain();
  health.closeWatches();
  await Bun.sleep(10);
  expect(sent).toEqual(["status 2", "end"]);
});

test("a Watch already told NOT_SERVING (during --shutdown-delay) is not told again", async () => {
  let ready = true;
  const health = new HealthService({ services: [], ready: async () => ready, watchIntervalMs: 5 });
  const { call, sent } = watchCall({ closed: false });
  health.watch(call as never);
  expect(await until(() => sent.length === 1, 5000)).toBe(true);
  ready = false;
  expect(await until(() => sent.length === 2, 5000)).toBe(true);
  health.drain();
  health.closeWatches();
  expect(sent).toEqual(["status 1", "status 2", "end"]);
});
