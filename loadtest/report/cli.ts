import { parseArgs } from "node:util";
import { htmlReport } from "./html-report.ts";
import { loadRuns } from "./load-runs.ts";
import { latencySvg } from "./svg-plot.ts";

const USAGE = `Usage: npm run loadtest:report -- run1.json [run2.json ...] -o report.html [--svg plot.svg] [--title T] [--slo-ms N]
Writes the HTML page and, next to it (or at --svg), the SVG plot of latency by percentile.
`;

/** `npm run loadtest:report`: compares runs written with `npm run loadtest -- --json`. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: "string", short: "o" },
      svg: { type: "string" },
      title: { type: "string", default: "Quiver latency by percentile" },
      "slo-ms": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length === 0 || values.out === undefined) {
    process.stderr.write(USAGE);
    return values.help ? 0 : 2;
  }
  const sloText = values["slo-ms"];
  const slo = sloText === undefined ? undefined : /^\d+(\.\d+)?$/.test(sloText) ? Number(sloText) : Number.NaN;
  // "abc" drew NaN coordinates and exited 0; "-5" drew the line outside the plot.
  if (slo !== undefined && !(slo > 0)) {
    process.stderr.write(`loadtest:report: --slo-ms: expected a number of milliseconds above 0, got ${JSON.stringify(sloText)}\n`);
    return 2;
  }
  const runs = await loadRuns(positionals);
  const svg = latencySvg(runs, { title: values.title, sloMs: slo });
  const svgPath = values.svg ?? values.out.replace(/\.html?$/, "") + ".svg";
  await Bun.write(values.out, htmlReport(runs, svg, values.title));
  await Bun.write(svgPath, svg);
  process.stdout.write(`wrote ${values.out} and ${svgPath} (${runs.length} run${runs.length === 1 ? "" : "s"})\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`loadtest:report: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
