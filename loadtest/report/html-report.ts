import { fmtInt, fmtMs } from "../output/table.ts";
import type { PlotRun } from "./load-runs.ts";
import { esc } from "./svg-plot.ts";

/** A self-contained page: the plot (inline SVG) and a table of the runs. No scripts. */
export function htmlReport(runs: readonly PlotRun[], svg: string, title: string): string {
  const rows = runs
    .map((r) => {
      const x = r.result;
      const l = x.latencyMs;
      const errors = Object.entries(x.errorsByKind)
        .map(([k, n]) => `${esc(k)}: ${fmtInt(n)}`)
        .join(", ");
      return `<tr><td>${esc(r.label)}</td><td>${esc(x.scenario)}</td><td>${x.mode === "open" ? `open @ ${fmtInt(x.rate.target ?? 0)}/s` : `closed × ${x.options["connections"]}`}</td><td>${fmtInt(x.rate.achieved)}</td><td>${fmtMs(l.p50)}</td><td>${fmtMs(l.p90)}</td><td>${fmtMs(l.p99)}</td><td>${fmtMs(l.p99_9)}</td><td>${fmtMs(l.max)}</td><td>${fmtInt(x.requests.ok)}</td><td>${errors || "0"}</td><td>${esc(x.startedAt)}</td></tr>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin-top:16px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child,td:nth-child(2),td:nth-child(3){text-align:left}th{background:#f4f4f4}
p.note{color:#555;max-width:900px}
</style></head><body>
<h1>${esc(title)}</h1>
${svg}
<p class="note">Latency by percentile: the x axis is in "nines" (90%, 99%, 99.9%, ...), so the tail gets as much room as the median.
Open-loop runs measure from each request's intended send time (corrected for coordinated omission); closed-loop runs from the actual send.</p>
<table>
<tr><th>run</th><th>scenario</th><th>load</th><th>achieved req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>ok</th><th>errors</th><th>started</th></tr>
${rows}
</table>
</body></html>
`;
}
