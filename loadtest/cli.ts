import { parseCli, USAGE } from "./args.ts";
import type { CliOptions } from "./args.ts";
import { findMax } from "./find-max.ts";
import type { FindMaxResult } from "./find-max.ts";
import { hgrmText } from "./output/hgrm.ts";
import { endProgress, progressPrinter } from "./output/progress.ts";
import { formatSummary, fmtInt, fmtMs } from "./output/table.ts";
import { runOnce } from "./run.ts";

/** `npm run loadtest -- ...`: one run, or `--find-max`. Exit 2 on bad options. */
async function main(argv: readonly string[]): Promise<number> {
  let o: CliOptions;
  try {
    o = parseCli(argv);
  } catch (e) {
    process.stderr.write(`loadtest: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const showProgress = o.progress || process.stderr.isTTY === true;
  if (o.findMax) return runFindMax(o, showProgress);
  const result = await runOnce(o, showProgress ? progressPrinter("") : undefined);
  if (showProgress) endProgress();
  if (!o.quiet) process.stdout.write(`${formatSummary(result)}\n`);
  if (o.json !== undefined) await Bun.write(o.json, `${JSON.stringify(result, null, 2)}\n`);
  if (o.hgrm !== undefined) await Bun.write(o.hgrm, hgrmText(result.histogram));
  return 0;
}

async function runFindMax(o: CliOptions, showProgress: boolean): Promise<number> {
  const out = process.stdout;
  if (!o.quiet) out.write(`find-max: ${o.scenario} on ${o.target.origin}, SLO p99 <= ${o.sloMs} ms and errors <= ${o.maxErrorRate * 100}%\n`);
  if (!o.quiet) out.write(`  ${"rate".padStart(10)} ${"achieved".padStart(10)} ${"p50".padStart(8)} ${"p99".padStart(8)} ${"max".padStart(8)} ${"errors".padStart(8)}  held\n`);
  const progress = showProgress ? progressPrinter("  ") : undefined;
  const result: FindMaxResult = await findMax(o, o, (s) => {
    if (showProgress) endProgress();
    if (o.quiet) return;
    const l = s.latencyMs;
    out.write(
      `  ${fmtInt(s.rate).padStart(10)} ${fmtInt(s.achieved).padStart(10)} ${fmtMs(l.p50).padStart(8)} ${fmtMs(l.p99).padStart(8)} ${fmtMs(l.max).padStart(8)} ${`${(s.errorRate * 100).toFixed(2)}%`.padStart(8)}  ${s.held ? "yes" : `no: ${s.why}`}\n`,
    );
  }, progress);
  if (!o.quiet) {
    out.write(
      result.maxRate === 0
        ? `no step met the SLO (first step ${fmtInt(o.startRate)} req/s); try --start-rate lower\n`
        : result.endedBy === "max-rate"
          ? `every step up to --max-rate held: ${fmtInt(result.maxRate)} req/s (p99 ${fmtMs(result.best?.latencyMs.p99 ?? 0)} ms); the SLO's limit is higher, raise --max-rate to find it\n`
          : `max rate within SLO: ${fmtInt(result.maxRate)} req/s (p99 ${fmtMs(result.best?.latencyMs.p99 ?? 0)} ms)\n`,
    );
  }
  if (o.json !== undefined) await Bun.write(o.json, `${JSON.stringify(result, null, 2)}\n`);
  if (o.hgrm !== undefined && result.best !== null) await Bun.write(o.hgrm, hgrmText(result.best.histogram));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`loadtest: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
