import type { FindMaxResult } from "../find-max.ts";
import type { RunResult } from "../output/result.ts";

/** A run as the report needs it: a label, its percentile curve and headline numbers. */
export interface PlotRun {
  readonly label: string;
  readonly result: RunResult;
}

/** Reads run files (`--json` of a run, or of `--find-max`: its best step). */
export async function loadRuns(paths: readonly string[]): Promise<PlotRun[]> {
  const runs: PlotRun[] = [];
  for (const p of paths) {
    let data: unknown;
    try {
      data = await Bun.file(p).json();
    } catch (e) {
      throw new Error(`${p}: not a JSON file (${(e as Error).message})`);
    }
    runs.push({ label: labelOf(data as RunResult, p), result: asRun(data, p) });
  }
  return runs;
}

export function asRun(data: unknown, source: string): RunResult {
  const d = data as Partial<RunResult & FindMaxResult>;
  if (d.tool !== "quiver-loadtest") throw new Error(`${source}: not a quiver-loadtest result`);
  if (d.kind === "find-max") {
    if (d.best === null || d.best === undefined) throw new Error(`${source}: find-max found no rate within the SLO; nothing to plot`);
    return d.best;
  }
  if (!Array.isArray(d.distribution)) throw new Error(`${source}: no latency distribution`);
  return d as RunResult;
}

function labelOf(r: RunResult, path: string): string {
  return typeof r.label === "string" && r.label.length > 0 ? r.label : (path.split("/").pop() ?? path);
}
