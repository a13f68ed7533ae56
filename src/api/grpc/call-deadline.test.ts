import { describe, expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { Metadata, status } from "@grpc/grpc-js";
import type { Admission } from "../../resilience/index.ts";
import { type MethodMetrics, unary } from "./call.ts";
import { type QuiverLookupRequest, QuiverGrpcService } from "./quiver-service.ts";

/**
 * The gRPC edge's deadlines against admission: a slot is held until the work
 * ends, not only until the caller is answered, and a LookupStream message's
 * budget counts from its arrival, as a unary call's does. Stand-ins for the
 * call, the admission and the serving layer; time only ever passes forward,
 * so nothing here depends on the machine's speed.
 */

const METRICS: MethodMetrics = { latency: { observe() {} } as never, count() {}, shed() {}, overdue() {} };

/** An admission that admits when told to and records its releases. */
function admission() {
  const released: boolean[] = [];
  let admit: (at: number) => void = () => {};
  let admittedAt = -1;
  const a = {
    admit: () =>
      new Promise<number>((resolve) => {
        admit = (at) => {
          admittedAt = at;
          resolve(at);
        };
      }),
    done: (_startedAt: number, failed?: boolean) => released.push(failed === true),
  } as unknown as Admission;
  return {
    admission: a,
    released,
    letIn: () => admit(performance.now()),
    admittedAt: () => admittedAt,
  };
}

function deferred<T>() {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("gRPC deadlines and admission", () => {
  test("a unary call answered DEADLINE_EXCEEDED keeps its admission slot until its work ends", async () => {
    const adm = admission();
    const work = deferred<string>();
    const answered = deferred<{ code?: number } | null>();
    const handler = unary(METRICS, () => work.promise, { admission: adm.admission });
    const call = { request: {}, metadata: new Metadata(), getDeadline: () => Date.now() + 20, sendMetadata() {} };
    handler(call as never, (error) => answered.resolve(error as { code?: number } | null));
    adm.letIn();
    // The deadline passes; the caller is answered while the work (a push's retries, say) goes on.
    expect((await answered.promise)?.code).toBe(status.DEADLINE_EXCEEDED);
    await Bun.sleep(5);
    expect(adm.released).toEqual([]); // released at the answer before: the work ran on outside the limit
    work.resolve("late");
    await Bun.sleep(0);
    expect(adm.released).toEqual([true]);
  });

  test("a LookupStream message's timeout_ms counts from its arrival, not from its admission; its slot is held until its work ends", async () => {
    const adm = admission();
    const seen: number[] = [];
    const work = deferred<Uint8Array>();
    const serving = {
      planLookup: () => ({ query: { refs: [] }, fullFeatureNames: false }),
      lookupRaw: () => undefined,
      lookupRest: (_plan: unknown, ctx: { deadline?: number }) => {
        seen.push(ctx.deadline ?? Number.NaN);
        return work.promise;
      },
    };
    const service = new QuiverGrpcService(serving as never, 50);
    const call = Object.assign(new EventEmitter(), {
      cancelled: false,
      getDeadline: () => Number.POSITIVE_INFINITY,
      pause() {},
      resume() {},
      end() {},
      write: (_bytes: Uint8Array, cb?: () => void) => {
        cb?.();
        return true;
      },
    });
    service.lookupStream(call as never, METRICS, adm.admission);
    const req: QuiverLookupRequest = { features: ["v:f"], feature_service: "", entities: [{ name: "k", int64_values: [1], string_values: [] }], full_feature_names: false, id: 7, timeout_ms: 10 };
    const sent = performance.now();
    call.emit("data", req);
    const arrived = performance.now();
    await Bun.sleep(30); // waiting for admission, longer than the message's budget
    adm.letIn();
    await Bun.sleep(0);
    expect(seen).toHaveLength(1);
    // Its budget ended 10 ms after it arrived, before it was admitted (it got 10 ms more from admission before).
    expect(seen[0]!).toBeGreaterThanOrEqual(sent + 10);
    expect(seen[0]!).toBeLessThanOrEqual(arrived + 10);
    expect(seen[0]!).toBeLessThan(adm.admittedAt());
    // Answered DEADLINE_EXCEEDED at once; the slot waits for the work.
    expect(adm.released).toEqual([]);
    work.resolve(new Uint8Array());
    await Bun.sleep(0);
    expect(adm.released).toEqual([true]);
  });
});
