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

  test("a waiter is refused when its timeout passes even if no request arrives or ends meanwhile (a scheduled wake-up)", async () => {
    let now = 0;
    const timers: { fn: () => void; at: number }[] = [];
    const a = new AdaptiveAdmission({ fixedLimit: 1, queue: 4, queueTimeoutMs: 50, now: () => now, schedule: (fn, ms) => timers.push({ fn, at: now + ms }) });
    const held = a.admit() as number;
    now = 10;
    const first = a.admit() as Promise<number>;
    now = 20;
    const second = a.admit() as Promise<number>;
    // One wake-up armed, for just past the oldest waiter's bound (10 + 50 ms).
    expect(timers.length).toBe(1);
    expect(timers[0]!.at).toBeGreaterThan(60);
    expect(timers[0]!.at).toBeLessThan(61);
    let settled = 0;
    void first.then(() => settled++);
    void second.then(() => settled++);
    now = timers[0]!.at;
    timers.shift()!.fn();
    expect(await first).toBe(-1);
    await Bun.sleep(0);
    expect(settled).toBe(1); // the second waiter's bound (70 ms) has not passed
    // Re-armed for the next waiter.
    expect(timers.length).toBe(1);
    now = timers[0]!.at;
    timers.shift()!.fn();
    expect(await second).toBe(-1);
    expect(timers.length).toBe(0); // nobody waits: nothing armed
    expect(a.snapshot()).toMatchObject({ inFlight: 1, queued: 0, shed: 2 });
    a.done(held);
  });

  test("while the queue stands, a second waiter brings the wake-up forward: the lone waiter kept the target, the older of two is cut at the standing wait", async () => {
    let now = 0;
    const timers: { fn: () => void; at: number }[] = [];
    const a = new AdaptiveAdmission({ fixedLimit: 1, queue: 16, queueTimeoutMs: 50, queueTargetMs: 5, queueIntervalMs: 100, queueStandingWaitMs: 1, queueStandingWaitMaxMs: 1, queueStandingRoom: 0, now: () => now, schedule: (fn, ms) => timers.push({ fn, at: now + ms }) });
    // Four arrivals per slot freed every 2 ms: sojourns above the 5 ms target for the 100 ms interval make the queue stand.
    let running = a.admit() as number;
    const answers: Promise<number>[] = [];
    for (let step = 0; step < 100 && !a.snapshot().queueStanding; step++) {
      for (let k = 0; k < 4; k++) answers.push(a.admit() as Promise<number>);
      now += 2;
      a.done(running);
      running = now;
    }
    expect(a.snapshot().queueStanding).toBe(true);
    // Let every waiter go: the slot frees and the rest are refused (their waits passed the 1 ms cut).
    now += 10;
    a.done(running);
    const held = a.admit() as number;
    await Promise.all(answers);
    expect(a.snapshot().queued).toBe(0);
    // The wake-ups armed meanwhile fire and find nobody waiting.
    while (timers.length > 0) {
      const t = timers.shift()!;
      now = Math.max(now, t.at);
      t.fn();
    }
    expect(a.snapshot().queueStanding).toBe(true);
    const lone = a.admit() as Promise<number>;
    // Alone, it keeps the 5 ms target.
    expect(timers.map((t) => t.at - now)).toEqual([5.5]);
    now += 0.5;
    const newer = a.admit() as Promise<number>;
    // A second waiter: the first is now cut at 1 ms, and a wake-up comes for then.
    expect(timers.map((t) => t.at - (now - 0.5))).toEqual([5.5, 1.5]);
    now = timers[1]!.at;
    timers[1]!.fn();
    expect(await lone).toBe(-1);
    // The newer waiter, alone again, is the one the freed slot takes.
    a.done(held);
    expect(await newer).toBe(now);
  });

  test("screen refuses for CPU pressure, or when no slot and no queue room are left, and takes no slot; acquire takes one", () => {
    let now = 0;
    let pass = true;
    const pressure = { pass: () => pass, overloaded: false, lastTurnMs: 0, turnBudgetMs: 0 };
    const a = new AdaptiveAdmission({ fixedLimit: 1, queue: 0, now: () => now, pressure });
    expect(a.screen()).toBe(0);
    expect(a.snapshot().inFlight).toBe(0);
    const t = a.acquire();
    expect(t).toBe(0);
    expect(a.acquire()).toBe(-1); // the limit, not the loop
    expect(a.screen()).toBe(-1); // no slot, no queue: refused on arrival, body unread
    pass = false;
    expect(a.screen()).toBe(-2);
    expect(a.snapshot()).toMatchObject({ inFlight: 1, shed: 3 });
    now = 5;
    a.done(t as number);
    expect(a.snapshot().inFlight).toBe(0);
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

  /** Drives the limit as a saturated pod would: `offered` requests want to be in flight; service time is `rtt(inFlight, t)`. */
  function drive(g: GradientLimit, rtt: (inFlight: number, t: number) => number, offered: (t: number) => number, untilMs: number, every?: (t: number) => void) {
    let t = 0;
    let next = 0;
    while (t < untilMs) {
      const n = Math.max(1, Math.min(offered(t), g.limit));
      const ms = rtt(n, t);
      g.sample(ms, n, t);
      t += ms / n; // n in flight: one completes every ms / n
      if (every !== undefined && t >= next) {
        every(t);
        next += 1000;
      }
    }
  }

  test("a CPU-bound pod under sustained overload keeps its limit near saturation: the baseline does not follow the queue up", () => {
    // 0.5 ms of CPU per request, 1.5 ms without a queue: saturated from 3 in flight, service time then grows with concurrency.
    const cpuBound = (n: number) => Math.max(1.5, n * 0.5);
    const g = new GradientLimit({});
    let highest = 0;
    drive(g, cpuBound, (t) => (t < 5000 ? 4 : 300), 120_000, (t) => {
      if (t > 10_000) highest = Math.max(highest, g.limit);
    });
    // A long average of all samples as the baseline walked this limit up to the maximum (1000): service time ~500 ms.
    // Floor probes at the limit's minimum (8 in flight, a queue for this CPU: 4 ms) let it settle near 20 after the
    // first probe under overload; at 2 in flight they measure the 1.5 ms floor and it stays at the minimum.
    expect(highest).toBeLessThanOrEqual(10);
    expect(cpuBound(g.limit)).toBeLessThanOrEqual(5);
    console.log(JSON.stringify({ gradientUnderCpuOverload: { limit: g.limit, highestAfter10s: highest, floorMs: g.baselineMs } }));
  });

  test("the queue allowance sets where a limit held down by queueing settles: twice it (8 by default), 4 at 1", () => {
    // Service time jumps once more than 2 are in flight (a core 2 requests fill): above that every window's gradient is at its 0.5 floor.
    const queued = (n: number) => (n <= 2 ? 0.5 : n);
    const settled = (g: GradientLimit) => {
      const seen: number[] = [];
      drive(g, queued, () => 300, 25_000, (t) => {
        if (t > 15_000 && !g.probingFloor) seen.push(g.limit);
      });
      return seen;
    };
    expect(new Set(settled(new GradientLimit({})))).toEqual(new Set([8]));
    const one = settled(new GradientLimit({ queueAllowance: 1 }));
    console.log(JSON.stringify({ settledLimits: { allowance4: 8, allowance1: [...new Set(one)] } }));
    expect(one.length).toBeGreaterThan(5);
    expect(Math.max(...one)).toBeLessThanOrEqual(4);
    expect(Math.min(...one)).toBeGreaterThanOrEqual(2);
    // The minimum follows the allowance (twice it) unless given.
    expect(new GradientLimit({ queueAllowance: 1, initial: 1, floorProbeEveryMs: 0 }).limit).toBe(2);
    expect(new GradientLimit({ initial: 1, floorProbeEveryMs: 0 }).limit).toBe(8);
  });

  test("a pod that starts under overload measures its floor first: its limit does not start at the queue's latency", () => {
    const cpuBound = (n: number) => Math.max(1.5, n * 0.5);
    const g = new GradientLimit({});
    let highest = 0;
    drive(g, cpuBound, () => 300, 25_000, (t) => {
      if (t > 2000) highest = Math.max(highest, g.limit);
    });
    // Learning the floor from the first windows (64 in flight, 32 ms each) held the limit at 64 and more until the next probe 30 s later.
    expect(g.baselineMs).toBeLessThanOrEqual(4);
    expect(highest).toBeLessThanOrEqual(20);
  });

  test("a floor that really rises (storage got slower) is learned: the limit shrinks, then grows back to what the load needs", () => {
    // I/O-bound: 1 ms whatever the concurrency (up to 200), then 10 ms from t = 20 s; 300 requests want to be in flight.
    const g = new GradientLimit({});
    const ioBound = (n: number, t: number) => (t < 20_000 ? 1 : 10) * Math.max(1, n / 200);
    const limits: number[] = [];
    drive(g, ioBound, () => 300, 120_000, () => {
      if (!g.probingFloor) limits.push(g.limit);
    });
    expect(g.baselineMs).toBeCloseTo(10, 0);
    expect(g.limit).toBeGreaterThanOrEqual(150);
    // Outside the floor probes (held at 2 in flight for one window) it never fell below its minimum.
    expect(Math.min(...limits.slice(25))).toBeGreaterThanOrEqual(8);
  });

  test("every floorProbeEveryMs the limit is held at floorInFlight until one window runs at that concurrency, then restored", () => {
    const g = new GradientLimit({ initial: 100, floorProbeEveryMs: 1000, windowSamples: 10 });
    // The first probe runs at start: held at 2 (not the minimum, 8: see FLOOR_IN_FLIGHT) until a window runs at that concurrency.
    expect([g.probingFloor, g.limit]).toEqual([true, 2]);
    for (let i = 0; i < 10; i++) g.sample(1, 2, 0);
    expect([g.probingFloor, g.limit, g.baselineMs]).toEqual([false, 100, 1]);
    for (let i = 0; i < 400; i++) g.sample(1, 100, i); // t = 0..399 ms: the limit grows
    const before = g.limit;
    expect(g.probingFloor).toBe(false);
    g.sample(1, 100, 1000); // the probe is due; this sample opens its first window
    expect(g.probingFloor).toBe(true);
    expect(g.limit).toBe(2);
    for (let i = 0; i < 9; i++) g.sample(3, 100, 1001); // admitted before the probe: not a probe window
    expect(g.probingFloor).toBe(true);
    for (let i = 0; i < 10; i++) g.sample(2, 2, 1002); // a window at the probe's concurrency
    expect(g.probingFloor).toBe(false);
    expect(g.baselineMs).toBe(2);
    expect(g.limit).toBe(before);
  });

  test("a floor probe that cannot complete a window (its slots held by long requests) is given up after floorProbeMaxMs, the floor unchanged", () => {
    const g = new GradientLimit({ initial: 100, floorProbeEveryMs: 30_000, floorProbeMaxMs: 1000, windowSamples: 50 });
    for (let i = 0; i < 50; i++) g.sample(1, 2, 0);
    expect([g.probingFloor, g.baselineMs]).toEqual([false, 1]);
    g.sample(1, 100, 30_000); // the next probe is due: held at 2
    expect([g.probingFloor, g.limit]).toEqual([true, 2]);
    // Two pushes to a hung shard hold both slots for seconds: a few samples, never a window of 50.
    g.expireProbe(30_500);
    expect(g.probingFloor).toBe(true);
    g.sample(5_000, 2, 30_900);
    expect(g.probingFloor).toBe(true);
    g.expireProbe(31_001);
    expect([g.probingFloor, g.limit, g.baselineMs]).toEqual([false, 100, 1]);
    // The next one comes a probe interval later.
    g.sample(1, 100, 40_000);
    expect(g.probingFloor).toBe(false);
    g.sample(1, 100, 61_002);
    expect(g.probingFloor).toBe(true);
  });

  test("does not grow when the application, not the pod, limits concurrency", () => {
    const g = new GradientLimit({ initial: 100, windowSamples: 10 });
    // The start-up probe (held at 2 in flight) ends with the first window run at that concurrency.
    for (let i = 0; i < 10; i++) g.sample(1, 2);
    for (let i = 0; i < 1000; i++) g.sample(1, 3);
    expect(g.limit).toBe(100);
  });
});
