/** One interval between two runs of a 1 ms tick (performance.now() ms). */
export interface Tick {
  readonly from: number;
  readonly to: number;
}

/**
 * Ticks this process's event loop every 1 ms until `stop()`, which answers
 * the intervals between ticks: an interval much longer than 1 ms is time
 * the loop was held (a collection, a long task, the host not running it),
 * during which no timer, a deadline's included, could fire.
 */
export function startLoopTicks(): { stop(): Tick[] } {
  const ticks: Tick[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    ticks.push({ from: last, to: now });
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      ticks.push({ from: last, to: performance.now() });
      return ticks;
    },
  };
}

/** The longest the loop went without a tick, less the tick's own 1 ms, among intervals overlapping [from, to]. */
export function loopHeld(ticks: readonly Tick[], from: number, to: number): number {
  let held = 0;
  for (const t of ticks) if (t.to > from && t.from < to) held = Math.max(held, t.to - t.from - 1);
  return held;
}
