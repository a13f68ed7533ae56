import { describe, expect, test } from "bun:test";
import { AdaptiveAdmission } from "./admission.ts";
import { GradientLimit } from "./gradient-limit.ts";

describe("AdaptiveAdmission", () => {
  test("admits up to the limit synchronously, queues a few, sheds the rest at once", async () => {
    let now = 0;
    const a = new AdaptiveAdmission({ fixedLimit: 2, queue: 1, queueTimeoutMs: 100, now: () => now });
    const t1 = a.admit();
    const t2 = a.admit();
    expect(typeof t1).toBe("number");
    expect(typeof t2).toBe("number");
    const queued = a.admit();
    expect(queued).toBeInstanceOf(Promise);
    expect(a.admit()).toBe(-1); // queue full: shed, synchronously
    expect(a.snapshot()).toMatchObject({ limit: 2, inFlight: 2, queued: 1, shed: 1 });
    now = 10;
    a.done(t1 as number);
    expect(await queued).toBe(10);
    expect(a.snapshot()).toMatchObject({ inFlight: 2, queued: 0, admitted: 3 });
  });

  test("a request that waited longer than the queue timeout is shed when a slot frees", async () => {
    let now = 0;
    const a = new AdaptiveAdmission({ fixedLimit: 1, queue: 4, queueTimeoutMs: 50, now: () => now });
    const t = a.admit() as number;
    const late = a.admit() as Promise<number>;
    now = 60;
    a.done(t);
    expect(await late).toBe(-1);
    expect(a.snapshot()).toMatchObject({ inFlight: 0, shed: 1 });
  });

  test("interval stats: p99 bucket, failures and shed requests, reset on read", () => {
    let now = 0;
    const a = new AdaptiveAdmission({ fixedLimit: 1000, queue: 0, now: () => now });
    for (let i = 0; i < 100; i++) {
      const t = a.admit() as number;
      now += i < 98 ? 1 : 40;
      a.done(t, i === 0);
    }
    const s = a.takeInterval();
    expect(s).toEqual({ completed: 100, failed: 1, shed: 0, p99Ms: 50 });
    expect(a.takeInterval().completed).toBe(0);
  });
});

describe("GradientLimit", () => {
  test("grows while latency holds, shrinks when it queues, recovers after", () => {
    const g = new GradientLimit({ initial: 20, min: 4, max: 500, windowSamples: 10 });
    const run = (windows: number, rttMs: number) => {
      for (let w = 0; w < windows; w++) for (let i = 0; i < 10; i++) g.sample(rttMs, g.limit);
    };
    run(20, 1);
    const grown = g.limit;
    expect(grown).toBeGreaterThan(20);
    run(8, 10); // latency x10 at the same concurrency: the pod is queueing
    const shrunk = g.limit;
    expect(shrunk).toBeLessThan(grown * 0.7);
    run(40, 1);
    expect(g.limit).toBeGreaterThan(shrunk);
    console.log(JSON.stringify({ gradientLimit: { start: 20, afterSteady: grown, afterQueueing: shrunk, afterRecovery: g.limit } }));
  });

  test("does not grow when the application, not the pod, limits concurrency", () => {
    const g = new GradientLimit({ initial: 100, windowSamples: 10 });
    for (let i = 0; i < 1000; i++) g.sample(1, 3);
    expect(g.limit).toBe(100);
  });
});
