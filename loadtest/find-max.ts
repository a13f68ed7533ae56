import type { CliOptions } from "./args.ts";
import type { Progress } from "./engine/run-load.ts";
import { errorRate } from "./output/result.ts";
import type { LatencySummary, RunResult } from "./output/result.ts";
import type { RunOptions } from "./run.ts";
import { runOnce } from "./run.ts";

export interface FindMaxStep {
  readonly rate: number;
  readonly achieved: number;
  readonly latencyMs: LatencySummary;
  readonly errorRate: number;
  readonly held: boolean;
  readonly why: string;
}

export interface FindMaxResult {
  readonly tool: "quiver-loadtest";
  readonly kind: "find-max";
  readonly scenario: string;
  readonly target: string;
  readonly slo: { readonly p99Ms: number; readonly maxErrorRate: number };
  /** Highest open-loop rate that met the SLO (0 if even the first step failed). */
  readonly maxRate: number;
  /** What ended the search: a step that broke the SLO, or --max-rate reached with every step held (the SLO's limit is higher). */
  readonly endedBy: "slo" | "max-rate";
  readonly steps: readonly FindMaxStep[];
  /** The full result of the step at maxRate, for reports. */
  readonly best: RunResult | null;
}

type Settings = Pick<CliOptions, "sloMs" | "maxErrorRate" | "startRate" | "stepFactor" | "stepDurationMs" | "maxRate" | "refine" | "retries">;

/**
 * Steps the open-loop rate up geometrically until a step breaks the SLO (p99 over
 * --slo-ms, errors over --max-error-rate, or under 90% of the rate achieved), then
 * bisects between the last good and first bad rate. Open loop, so a server that
 * falls behind shows it in latency instead of quietly slowing the generator. A
 * failing step is run again (`retries`) before it counts, so one burst of outside
 * load on a shared machine does not end the search.
 */
export async function findMax(
  base: RunOptions,
  s: Settings,
  onStep?: (step: FindMaxStep) => void,
  onProgress?: (p: Progress) => void,
  /** Runs one step; the real generator by default, a model in the search's own tests. */
  runStep: (o: RunOptions, onProgress?: (p: Progress) => void) => Promise<RunResult> = runOnce,
  /** Pause between steps so queues a step left behind drain (0 where nothing queues). */
  settleMs = 300,
): Promise<FindMaxResult> {
  if (!(s.stepFactor > 1)) throw new Error(`--step-factor: must be > 1, got ${s.stepFactor}`);
  // A start that rounds to 0 sent nothing, was judged held, and stepped to 0 again: the search never ended.
  if (!(Math.round(s.startRate) >= 1)) throw new Error(`--start-rate: must be at least 1 request a second, got ${s.startRate}`);
  if (Math.round(s.startRate) > s.maxRate) throw new Error(`--start-rate ${s.startRate} is above --max-rate ${s.maxRate}: no step would run`);
  const steps: FindMaxStep[] = [];
  let best: RunResult | null = null;
  let good = 0;
  let bad = 0;
  const tryRate = async (rate: number, attempt = 0): Promise<boolean> => {
    const r = await runStep({ ...base, mode: "open", rate, durationMs: s.stepDurationMs, label: `${base.scenario} @${rate}/s` }, onProgress);
    const er = errorRate(r);
    const why =
      r.latencyMs.p99 > s.sloMs
        ? `p99 ${r.latencyMs.p99} ms > ${s.sloMs} ms`
        : er > s.maxErrorRate
          ? `errors ${(er * 100).toFixed(3)}% > ${(s.maxErrorRate * 100).toFixed(3)}%`
          : r.rate.achieved < 0.9 * rate
            ? `achieved ${r.rate.achieved} < 90% of ${rate}`
            : "";
    const step: FindMaxStep = { rate, achieved: r.rate.achieved, latencyMs: r.latencyMs, errorRate: er, held: why === "", why };
    steps.push(step);
    onStep?.(step);
    if (step.held && rate > good) {
      good = rate;
      best = r;
    }
    // Let queues the step left behind drain before the next one.
    if (settleMs > 0) await Bun.sleep(settleMs);
    if (!step.held && attempt < s.retries) return tryRate(rate, attempt + 1);
    return step.held;
  };
  let rate = Math.round(s.startRate);
  const cap = Math.floor(s.maxRate);
  for (;;) {
    if (!(await tryRate(rate))) {
      bad = rate;
      break;
    }
    if (rate >= cap) break;
    // At least one request a second more: 1 × 1.4 rounded back to 1 (and 1000 × 1.0004 to 1000), for ever. A step past
    // the cap runs at the cap: 200 and 300 held under a cap of 400, the next step (450) was over it, and 400 was never tried.
    rate = Math.min(cap, Math.max(rate + 1, Math.round(rate * s.stepFactor)));
  }
  for (let i = 0; i < s.refine && bad > 0 && bad - good > Math.max(1, good * 0.02); i++) {
    const mid = Math.round((good + bad) / 2);
    if (await tryRate(mid)) good = mid;
    else bad = mid;
  }
  return {
    tool: "quiver-loadtest",
    kind: "find-max",
    scenario: base.scenario,
    target: base.target.origin,
    slo: { p99Ms: s.sloMs, maxErrorRate: s.maxErrorRate },
    maxRate: good,
    endedBy: bad > 0 ? "slo" : "max-rate",
    steps,
    best,
  };
}
