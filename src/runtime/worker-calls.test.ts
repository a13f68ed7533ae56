import { expect, test } from "bun:test";
import { WorkerCallError, WorkerCalls, type WorkerLike, WorkerLostError } from "./worker-calls.ts";

const fixture = new URL("./worker-calls-fixture.ts", import.meta.url).href;
const spawn = (): WorkerLike => new Worker(fixture, { type: "module" }) as unknown as WorkerLike;

test("calls made before the worker is ready are answered, in order, with their progress first", async () => {
  // Bun 1.4 drops messages that reach a worker with no handler yet (oven-sh/bun#40141): answerCalls installs it first.
  const calls = new WorkerCalls(spawn(), "the fixture's thread");
  const seen: unknown[] = [];
  const answers = await Promise.all([1, 2, 3, 4, 5].map((n) => calls.call({ echo: n, steps: 2 }, [], (p) => seen.push(`${n}:${p}`))));
  expect(answers).toEqual([1, 2, 3, 4, 5]);
  expect(seen).toEqual(["1:0", "1:1", "2:0", "2:1", "3:0", "3:1", "4:0", "4:1", "5:0", "5:1"]);
  calls.terminate();
});

test("a call the worker fails on is answered as an error with its code, and the worker goes on", async () => {
  const calls = new WorkerCalls(spawn(), "the fixture's thread");
  const failure = await calls.call({ fail: "SQLITE_FULL" }).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(WorkerCallError);
  expect((failure as WorkerCallError).code).toBe("SQLITE_FULL");
  expect((failure as Error).message).toBe("asked to fail (ready)");
  expect(await calls.call({ echo: "still here" })).toBe("still here");
  calls.terminate();
});

test("a body that cannot be sent is refused at once; terminating rejects what is pending and every later call", async () => {
  const calls = new WorkerCalls(spawn(), "the fixture's thread");
  await expect(calls.call({ echo: () => {} })).rejects.toThrow();
  expect(calls.inFlight).toBe(0);
  const pending = calls.call({ echo: 1 });
  calls.terminate();
  const lost = await pending.catch((e: unknown) => e);
  expect(lost).toBeInstanceOf(WorkerLostError);
  expect((lost as WorkerLostError).unsent).toBe(false);
  // A later call never reaches the thread: its error says so.
  const refused = await calls.call({ echo: 2 }).catch((e: unknown) => e);
  expect((refused as Error).message).toBe("the fixture's thread was stopped");
  expect((refused as WorkerLostError).unsent).toBe(true);
});

test("onLost hears the loss once, after the pending calls were rejected and while their handlers have not run; ended settles with the worker's end", async () => {
  const calls = new WorkerCalls(spawn(), "the fixture's thread");
  const order: string[] = [];
  const pending = calls.call({ echo: 1 }).catch(() => order.push("pending rejected (handler)"));
  calls.onLost((lost) => order.push(`lost: ${lost.message}; in flight ${calls.inFlight}`));
  calls.terminate();
  calls.terminate();
  order.push("terminate returned");
  await pending;
  // A listener added afterwards hears it at once.
  calls.onLost(() => order.push("late listener"));
  await calls.ended;
  expect(order).toEqual(["lost: the fixture's thread was stopped; in flight 0", "terminate returned", "pending rejected (handler)", "late listener"]);
});
