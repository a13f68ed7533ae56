import { describe, expect, test } from "bun:test";
import { AdaptiveAdmission } from "./admission.ts";
import { StandingWait } from "./standing-wait.ts";

/**
 * Feeds the learner windows of 200 ms from a model of its load: `closed`
 * clients that resend a refusal at once (each comes back one refusal's wait
 * plus `overheadMs` later, so arrivals per ms fall as the wait grows), or an
 * open load of `perMs` arrivals whatever the wait. Lookups answered: `servedPerMs`.
 */
function drive(learner: StandingWait, clock: { now: number; arrivals: number; answered: number; refused: number }, windows: number, load: { closed: number } | { perMs: number }, servedPerMs = 1.8, overheadMs = 3) {
  const seen: number[] = [];
  for (let w = 0; w < windows; w++) {
    // The load within a window follows the wait in force during it.
    const perMs = "closed" in load ? load.closed / (learner.ms + overheadMs) : load.perMs;
    for (let ms = 0; ms < 200; ms += 10) {
      clock.now += 10;
      clock.arrivals += perMs * 10;
      clock.answered += servedPerMs * 10;
      clock.refused += Math.max(0, perMs - servedPerMs) * 10;
      learner.observe(clock.now, clock.arrivals, clock.answered, clock.refused);
    }
    seen.push(learner.ms);
  }
  return seen;
}

/** A learner between 1 and 5 ms in 200 ms windows, its episode begun at 0, and the totals its model feeds it. */
function started() {
  const learner = new StandingWait({ floorMs: 1, ceilingMs: 5, windowMs: 200 });
  learner.reset(0, 0, 0, 0);
  return { learner, clock: { now: 0, arrivals: 0, answered: 0, refused: 0 } };
}

describe("StandingWait", () => {
  test("a closed population teaches it the longest wait: each longer wait brings its clients back less often", () => {
    const { learner, clock } = started();
    expect(learner.ms).toBe(1);
    const seen = drive(learner, clock, 30, { closed: 64 });
    expect(seen.at(-1)).toBe(5);
    // By doubling from the floor: 1, 2, 4, then the ceiling; from there a shorter wait now and then, undone at once.
    expect([...new Set(seen.slice(0, seen.indexOf(5) + 1))]).toEqual([1, 2, 4, 5]);
    const after = seen.slice(seen.indexOf(5));
    expect(after.filter((ms) => ms === 5).length).toBeGreaterThanOrEqual(after.length - 2);
  });

  test("an open load leaves it at the floor: arrivals keep their rate whatever the wait", () => {
    const { learner, clock } = started();
    const seen = drive(learner, clock, 100, { perMs: 5.4 });
    // It tries a longer wait now and then (less often each time it fails) and goes straight back.
    expect(Math.max(...seen)).toBe(2);
    expect(seen.filter((ms) => ms === 1).length).toBeGreaterThan(90);
    expect(seen.at(-1)).toBe(1);
  });

  test("a load that turns open again gets the short wait back, and a new episode starts from the floor", () => {
    const { learner, clock } = started();
    drive(learner, clock, 30, { closed: 64 });
    expect(learner.ms).toBe(5);
    const seen = drive(learner, clock, 40, { perMs: 5.4 });
    expect(seen.at(-1)).toBe(1);
    drive(learner, clock, 30, { closed: 64 });
    expect(learner.ms).toBe(5);
    learner.reset(clock.now, clock.arrivals, clock.answered, clock.refused);
    expect(learner.ms).toBe(1);
  });

  test("a longer wait that costs answers is not kept, however its arrivals fall", () => {
    const { learner, clock } = started();
    const seen: number[] = [];
    for (let w = 0; w < 60; w++) seen.push(...drive(learner, clock, 1, { closed: 64 }, learner.ms > 1 ? 1.2 : 1.8));
    expect(seen.filter((ms) => ms === 1).length).toBeGreaterThan(50);
    expect(seen.at(-1)).toBe(1);
  });

  test("windows where few arrivals were refused teach nothing", () => {
    const { learner, clock } = started();
    // A closed population barely over capacity: under a tenth of its arrivals refused.
    expect(drive(learner, clock, 30, { closed: 7.8 }, 1.8)).toEqual(Array(30).fill(1));
  });

  test("settings are checked; a ceiling at the floor keeps it fixed", () => {
    expect(() => new StandingWait({ floorMs: 0, ceilingMs: 5, windowMs: 200 })).toThrow(/floor/);
    expect(() => new StandingWait({ floorMs: 1, ceilingMs: 5, windowMs: 0 })).toThrow(/window/);
    const fixed = new StandingWait({ floorMs: 2, ceilingMs: 1, windowMs: 200 });
    expect(fixed.adapts).toBe(false);
    fixed.reset(0, 0, 0, 0);
    expect(drive(fixed, { now: 0, arrivals: 0, answered: 0, refused: 0 }, 30, { closed: 64 }).at(-1)).toBe(2);
  });
});

/**
 * AdaptiveAdmission on a fake clock with two slots (1 ms per request) and a
 * closed population of `clients` that resend at once, refusals included.
 * Returns refusals and answers over the last second and the wait it ended on.
 */
async function closedPopulation(options: { clients: number; waitMaxMs?: number; seconds: number }) {
  let now = 0;
  const due: { at: number; fn: () => void }[] = [];
  const a = new AdaptiveAdmission({
    fixedLimit: 2,
    queue: 64,
    queueTimeoutMs: 50,
    queueTargetMs: 5,
    queueIntervalMs: 100,
    queueStandingWaitMs: 1,
    ...(options.waitMaxMs === undefined ? {} : { queueStandingWaitMaxMs: options.waitMaxMs }),
    now: () => now,
    schedule: (fn, ms) => due.push({ at: now + ms, fn }),
  });
  const STEP = 0.25;
  const ready: number[] = Array(options.clients).fill(0);
  const inService: { endsAt: number; startedAt: number; client: number }[] = [];
  let refused = 0;
  let answered = 0;
  const endMs = options.seconds * 1000;
  const start = (client: number, t: number) => {
    if (t >= 0) inService.push({ endsAt: now + 1, startedAt: t, client });
    else {
      if (now >= endMs - 1000) refused++;
      ready[client] = now + STEP;
    }
  };
  while (now < endMs) {
    for (let c = 0; c < ready.length; c++) {
      if (ready[c]! > now) continue;
      ready[c] = Number.POSITIVE_INFINITY;
      const t = a.admit();
      if (typeof t === "number") start(c, t);
      else void t.then((v) => start(c, v));
    }
    for (let k = 0; k < 3; k++) await Promise.resolve();
    now += STEP;
    for (let i = due.length - 1; i >= 0; i--) {
      if (due[i]!.at > now) continue;
      const { fn } = due.splice(i, 1)[0]!;
      fn();
    }
    for (let i = inService.length - 1; i >= 0; i--) {
      const s = inService[i]!;
      if (s.endsAt > now) continue;
      inService.splice(i, 1);
      a.done(s.startedAt);
      if (now >= endMs - 1000) answered++;
      ready[s.client] = now;
    }
    for (let k = 0; k < 3; k++) await Promise.resolve();
  }
  return { refused, answered, waitMs: a.snapshot().standingWaitMs, standing: a.snapshot().queueStanding };
}

describe("AdaptiveAdmission's standing wait", () => {
  test("clients that resend a 503 at once teach the standing queue to hold refusals longer, so fewer come back", async () => {
    const learnt = await closedPopulation({ clients: 24, seconds: 4 });
    const fixed = await closedPopulation({ clients: 24, waitMaxMs: 1, seconds: 4 });
    expect(learnt.standing).toBe(true);
    expect(fixed.waitMs).toBe(1);
    expect(learnt.waitMs).toBeGreaterThanOrEqual(4);
    // The same two slots answer as many either way; the refusals are what the wait saves.
    expect(learnt.answered).toBeGreaterThanOrEqual(fixed.answered * 0.95);
    expect(learnt.refused).toBeLessThan(fixed.refused * 0.5);
  });
});
