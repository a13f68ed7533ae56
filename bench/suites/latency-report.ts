import { existsSync, mkdirSync } from "node:fs";
import { htmlReport } from "../../loadtest/report/html-report.ts";
import { loadRuns } from "../../loadtest/report/load-runs.ts";
import { latencySvg } from "../../loadtest/report/svg-plot.ts";
import type { BenchContext } from "./suite.ts";

/**
 * Writes loadtest/reports/<name>.{html,svg} from this run's open-loop results,
 * so the plot README shows always comes from the latest `npm run bench`.
 */
export async function writeLatencyReport(ctx: BenchContext, rawNames: readonly string[], name = "latency", title = "Quiver lookup latency at half its max rate (open loop, CO-corrected)", sloMs = 1): Promise<void> {
  const paths = rawNames.map((n) => `${ctx.rawDir}/${n}.json`).filter((p) => existsSync(p));
  if (paths.length === 0) return;
  const runs = await loadRuns(paths);
  const svg = latencySvg(runs, { title, sloMs });
  const dir = ctx.reportsDir;
  mkdirSync(dir, { recursive: true });
  await Bun.write(`${dir}/${name}.svg`, svg);
  await Bun.write(`${dir}/${name}.html`, htmlReport(runs, svg, title));
  ctx.log(`  wrote ${dir.slice(ctx.root.length + 1)}/${name}.html and ${name}.svg`);
}
