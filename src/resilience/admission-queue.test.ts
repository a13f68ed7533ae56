import { describe, expect, test } from "bun:test";
import { AdmissionQueue, type Waiter } from "./admission-queue.ts";
import { AdaptiveAdmission, type AdmissionOptions } from "./admission.ts";

/** A waiter that records how it was answered. */
function waiter(at: number, answers: Map<number, number>): Waiter {
  return { at, resolve: (t) => answers.set(at, t) };
}

/** Serves one freed slot at `now` the way admission does: late waiters first (refused), then the next one. */
function serveSlot(q: AdmissionQueue, now: number, refused: number[]): Waiter | undefined {
  for (let w = q.expired(now); w !== undefined; w = q.expired(now)) refused.push(w.at);
  return q.next(now);
}

const OPTIONS = { capacity: 8, timeoutMs: 50, targetMs: 5, intervalMs: 100 };

describe("AdmissionQueue", () => {
  test("a burst is served first come first served and may wait up to the timeout", () => {
    const q = new AdmissionQueue(OPTIONS);
    const answers = new Map<number, number>();
    for (let at = 0; at < 4; at++) expect(q.push(waiter(at, answers))).toBeUndefined();
    const refused: number[] = [];
    // Served 40 ms later: above the 5 ms target, but a single burst is not a standing queue.
    expect([serveSlot(q, 40, refused)?.at, serveSlot(q, 41, refused)?.at]).toEqual([0, 1]);
    expect(q.isStandingAt(41)).toBe(false);
    // 60 ms after they came, the rest have waited past the 50 ms timeout.
    expect(serveSlot(q, 60, refused)).toBeUndefined();
    expect(refused).toEqual([2, 3]);
  });

  test("waiters leaving above the target for an interval make it standing: newest first, waits cut at the target, oldest give way", () => {
    const q = new AdmissionQueue(OPTIONS);
    const answers = new Map<number, number>();
    const refused: number[] = [];
    // A queue that stays 8 deep, served every 2 ms: each waiter leaves after ~16 ms.
    let next = 0;
    for (; next < 8; next++) q.push(waiter(next * 2, answers));
    let now = 16;
    const served: number[] = [];
    while (!q.isStandingAt(now - 2) && now < 200) {
      served.push(serveSlot(q, now, refused)!.at);
      q.push(waiter(now, answers));
      now += 2;
    }
    expect(q.isStandingAt(now - 2)).toBe(true);
    // It took the interval (100 ms) of sojourns above the target, and until then the order was FIFO.
    expect(now).toBeGreaterThanOrEqual(116);
    expect(served).toEqual([...served].sort((a, b) => a - b));
    // Standing: everyone who waited more than 5 ms is refused before a slot is handed out, then the newest is served first.
    const before = refused.length;
    const gaveWay = q.push(waiter(now, answers));
    if (gaveWay !== undefined) refused.push(gaveWay.at);
    const waiting = q.length;
    expect(serveSlot(q, now + 1, refused)?.at).toBe(now);
    expect(refused.length - before).toBeGreaterThan(0);
    expect(refused.slice(before).every((at) => now + 1 - at > 5)).toBe(true);
    // What is left came within the last 5 ms (one every 2 ms).
    expect(q.length).toBe(waiting - 1 - (refused.length - before - (gaveWay === undefined ? 0 : 1)));
    expect(q.length).toBeLessThanOrEqual(2);
    // Waits are cut at the target.
    q.push(waiter(now + 2, answers));
    expect(serveSlot(q, now + 10, refused)).toBeUndefined();
    expect(q.length).toBe(0);
    // Full while standing: an arrival takes the oldest waiter's place.
    for (let i = 0; i < 8; i++) q.push(waiter(now + 20 + i * 0.1, answers));
    expect(q.refusesArrivals).toBe(false);
    expect(q.push(waiter(now + 21, answers))?.at).toBe(now + 20);
  });

  /**
   * A queue 8 deep served every 2 ms (each waiter leaves after ~16 ms) until it stands, then emptied:
   * the clock at that moment. Detection does not depend on the standing wait.
   */
  function makeStanding(q: AdmissionQueue, answers: Map<number, number>, refused: number[]): number {
    for (let at = 0; at < 8; at++) q.push(waiter(at * 2, answers));
    let now = 16;
    while (!q.isStandingAt(now - 2) && now < 200) {
      serveSlot(q, now, refused);
      q.push(waiter(now, answers));
      now += 2;
    }
    expect(now).toBeGreaterThanOrEqual(116);
    expect(q.isStandingAt(now - 2)).toBe(true);
    while (serveSlot(q, now, refused) !== undefined);
    return now;
  }

  test("while it stands, waits are cut at the standing wait, shorter than the target that detected it", () => {
    const q = new AdmissionQueue({ ...OPTIONS, standingWaitMs: 1 });
    const answers = new Map<number, number>();
    const refused: number[] = [];
    // Detection is unchanged: sojourns above the 5 ms target for the 100 ms interval.
    const now = makeStanding(q, answers, refused);
    // Standing: a waiter is refused once it has waited more than 1 ms, not 5.
    const before = refused.length;
    q.push(waiter(now, answers));
    q.push(waiter(now + 0.5, answers));
    expect(q.expiresAt()).toBe(now + 1);
    expect(serveSlot(q, now + 1.2, refused)?.at).toBe(now + 0.5);
    expect(refused.slice(before)).toEqual([now]);
    // A waiter alone in the queue is the one the next free slot takes: refusing it would leave that slot idle, so it keeps the target.
    q.push(waiter(now + 2, answers));
    expect(q.expiresAt()).toBe(now + 7);
    expect(serveSlot(q, now + 5, refused)?.at).toBe(now + 2);
    expect(refused.slice(before)).toEqual([now]);
    // Once a newer one comes, the older is cut at the standing wait again.
    q.push(waiter(now + 6, answers));
    expect(q.expiresAt()).toBe(now + 11);
    q.push(waiter(now + 6.5, answers));
    expect(q.expiresAt()).toBe(now + 7);
    expect(serveSlot(q, now + 7.2, refused)?.at).toBe(now + 6.5);
    expect(refused.slice(before)).toEqual([now, now + 6]);
    // Not standing, the burst timeout applies again: waits up to 50 ms are served.
    const calm = new AdmissionQueue({ ...OPTIONS, standingWaitMs: 1 });
    calm.push(waiter(0, answers));
    expect(serveSlot(calm, 40, refused)?.at).toBe(0);
  });

  test("the standing wait is at most the target, and must be positive", () => {
    const q = new AdmissionQueue({ ...OPTIONS, standingWaitMs: 20 });
    const answers = new Map<number, number>();
    const now = makeStanding(q, answers, []);
    // Two waiters: the older is cut at the standing wait (a lone one keeps the target whatever it is).
    q.push(waiter(now, answers));
    q.push(waiter(now + 0.5, answers));
    expect(q.expiresAt()).toBe(now + 5);
    expect(() => new AdmissionQueue({ ...OPTIONS, standingWaitMs: 0 })).toThrow(/standing wait/);
  });

  test("the queue stops standing once it has refused no one for an interval", () => {
    const q = new AdmissionQueue(OPTIONS);
    const answers = new Map<number, number>();
    const refused: number[] = [];
    for (let at = 0; at < 8; at++) q.push(waiter(at, answers));
    let now = 20;
    while (!q.isStandingAt(now - 2)) {
      serveSlot(q, now, refused);
      q.push(waiter(now - 10, answers));
      now += 2;
    }
    const standingAt = now;
    // Light load: one waiter at a time, served at once, nobody refused.
    while (q.isStandingAt(now - 9) && now < standingAt + 500) {
      q.push(waiter(now, answers));
      expect(serveSlot(q, now + 1, refused)?.at).toBe(now);
      now += 10;
    }
    expect(q.isStandingAt(now - 9)).toBe(false);
    expect(now - standingAt).toBeLessThanOrEqual(130);
    // First come first served again, with the burst timeout.
    q.push(waiter(now + 1, answers));
    q.push(waiter(now + 2, answers));
    expect(serveSlot(q, now + 30, refused)?.at).toBe(now + 1);
  });

  test("target 0: plain FIFO with the timeout, never standing", () => {
    const q = new AdmissionQueue({ ...OPTIONS, targetMs: 0 });
    const answers = new Map<number, number>();
    const refused: number[] = [];
    for (let at = 0; at < 8; at++) q.push(waiter(at, answers));
    for (let now = 30; now < 1000; now += 2) {
      serveSlot(q, now, refused);
      q.push(waiter(now - 20, answers));
    }
    expect(q.isStandingAt(998)).toBe(false);
    expect(q.refusesArrivals).toBe(true);
  });

  test("settings are checked", () => {
    expect(() => new AdmissionQueue({ ...OPTIONS, capacity: -1 })).toThrow(/capacity/);
    expect(() => new AdmissionQueue({ ...OPTIONS, timeoutMs: 0 })).toThrow(/timeout/);
    expect(() => new AdmissionQueue({ ...OPTIONS, targetMs: -1 })).toThrow(/target/);
  });
});

/** How each waiter of `sustainedOverload` was answered: when it came, how long it waited, admitted or refused. */
interface Settled {
  readonly at: number;
  readonly waited: number;
  readonly admitted: boolean;
}

/**
 * Two slots, one freed every 1 ms, 3 arrivals per slot freed, for 400 ms, on the admission's clock.
 * Arrivals are screened first and then take a slot, as the HTTP edge does (`screen` and `acquire`);
 * what waited for a slot is reported as it settles, and arrivals refused by the screen are counted.
 */
async function sustainedOverload(options: Omit<AdmissionOptions, "now">): Promise<{ settled: Settled[]; screenedOut: number[]; a: AdaptiveAdmission; clock: { now: number } }> {
  const clock = { now: 0 };
  const a = new AdaptiveAdmission({ fixedLimit: 2, queue: 16, queueTimeoutMs: 50, queueTargetMs: 5, queueIntervalMs: 100, ...options, now: () => clock.now });
  const inFlight: number[] = [a.admit() as number, a.admit() as number];
  const waits: { at: number; p: Promise<number> }[] = [];
  const settled: Settled[] = [];
  const screenedOut: number[] = [];
  for (let step = 0; step < 400; step++) {
    for (let k = 0; k < 3; k++) {
      if (a.screen() < 0) {
        screenedOut.push(clock.now);
        continue;
      }
      const t = a.acquire();
      if (typeof t === "number") {
        if (t >= 0) inFlight.push(t);
      } else waits.push({ at: clock.now, p: t });
    }
    clock.now += 1;
    a.done(inFlight.shift()!);
    await Promise.resolve();
    for (let i = waits.length - 1; i >= 0; i--) {
      const w = waits[i]!;
      const t = await Promise.race([w.p, Promise.resolve(Number.NaN)]);
      if (Number.isNaN(t)) continue;
      waits.splice(i, 1);
      if (t >= 0) inFlight.push(t);
      settled.push({ at: w.at, waited: (t >= 0 ? t : clock.now) - w.at, admitted: t >= 0 });
    }
  }
  return { settled, screenedOut, a, clock };
}

describe("AdaptiveAdmission with a standing queue", () => {
  // The standing wait: 1 ms, the default (1.25 ms: an open load never teaches it longer, standing-wait.ts), or the 5 ms target (what 0 means);
  // every arrival waits its turn (no standing room: the test below has it).
  test.each([
    { wait: 1, within: 2 },
    { wait: 0, within: 6 },
    { wait: undefined, within: 2 },
  ])("under sustained overload admitted requests stop waiting behind the queue and refusals come within the standing wait (%o)", async ({ wait, within }) => {
    const { settled, a, clock } = await sustainedOverload({ queueStandingRoom: 0, ...(wait === undefined ? {} : { queueStandingWaitMs: wait }) });
    // Once the queue stands (well before 250 ms), what is admitted has hardly waited, and refusals come within the standing wait
    // (the clock moves in 1 ms steps here); before, within the 50 ms timeout.
    const late = settled.filter((s) => s.at > 250);
    expect(late.filter((s) => s.admitted).every((s) => s.waited <= 1)).toBe(true);
    expect(settled.filter((s) => !s.admitted).every((s) => s.waited <= (s.at > 250 ? within : 51))).toBe(true);
    expect(a.snapshot().queueStanding).toBe(true);
    // Waiters are kept up to the wait, not refused sooner.
    expect(Math.max(...late.filter((s) => !s.admitted).map((s) => s.waited))).toBe(within);
    // The load stops: with no call since, the gauge still reads the queue as over once it has refused no one for the interval.
    clock.now += 150;
    expect(a.snapshot().queueStanding).toBe(false);
  });

  test("with standing room (the default), a standing queue refuses arrivals beyond what the next releases take on arrival, unread, and still admits within a release", async () => {
    const { settled, screenedOut, a, clock } = await sustainedOverload({ queueStandingWaitMaxMs: 1.25 });
    expect(a.snapshot().queueStanding).toBe(true);
    // A release a millisecond, a 1.25 ms wait: room for one waiter, and it is the one the next release takes.
    expect(a.snapshot().queued).toBeLessThanOrEqual(1);
    const late = settled.filter((s) => s.at > 250);
    expect(late.filter((s) => s.admitted).length).toBeGreaterThan(140);
    expect(late.filter((s) => s.admitted).every((s) => s.waited <= 1)).toBe(true);
    // Of the 2 arrivals a millisecond beyond what is served, every one is refused on arrival, none after waiting.
    expect(late.filter((s) => !s.admitted)).toEqual([]);
    expect(screenedOut.filter((at) => at > 250).length).toBeGreaterThan(280);
    // Refusals on arrival keep the queue standing; once the load stops, it stops.
    clock.now += 150;
    expect(a.snapshot().queueStanding).toBe(false);
  });

  test("standing room applies at the first standing wait only: a longer learnt wait queues every arrival again", () => {
    const q = new AdmissionQueue({ ...OPTIONS, capacity: 16, standingWaitMs: 1, standingRoom: 0.5 });
    const answers = new Map<number, number>();
    // Standing: sojourns above the 5 ms target for the 100 ms interval, one release every 2 ms.
    let now = 0;
    for (let i = 0; i < 6; i++) q.push(waiter(i, answers));
    while (!q.isStanding && now < 300) {
      now += 2;
      q.released(now);
      q.expired(now);
      q.next(now);
      q.push(waiter(now - 10, answers));
    }
    expect(q.isStanding).toBe(true);
    for (let w = q.expired(now); w !== undefined; w = q.expired(now));
    while (q.length > 0) q.next(now);
    // Releases every 2 ms, a 1 ms wait, room for half of it: one waiter, then arrivals are refused.
    expect(q.refuseArrivalAt(now)).toBe(false);
    q.push(waiter(now, answers));
    expect(q.refuseArrivalAt(now)).toBe(true);
    // A learnt longer wait: every arrival waits its turn.
    q.setStandingWait(4);
    expect(q.refuseArrivalAt(now)).toBe(false);
    q.setStandingWait(1);
    expect(q.refuseArrivalAt(now)).toBe(true);
    // Without standing room, never.
    expect(new AdmissionQueue({ ...OPTIONS, standingRoom: 0 }).refuseArrivalAt(0)).toBe(false);
    expect(() => new AdmissionQueue({ ...OPTIONS, standingRoom: -1 })).toThrow(/standing room/);
  });
});
