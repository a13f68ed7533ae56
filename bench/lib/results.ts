import type { MachineInfo } from "./machine.ts";

/** One line of a suite's verdict: measured vs baseline and target. */
export interface Check {
  readonly name: string;
  readonly unit: string;
  readonly baseline: number | null;
  readonly measured: number | null;
  /** measured / baseline, when both exist and the ratio means something. */
  readonly ratio: number | null;
  /** Human form, e.g. ">= 0.75" or "<= 1 ms". */
  readonly target: string;
  /** null when there is no target or nothing was measured. */
  readonly pass: boolean | null;
}

/** What every bench/results/<file>.json holds (plus suite-specific detail). */
export interface SuiteResult {
  readonly suite: string;
  readonly title: string;
  readonly date: string;
  readonly machine: MachineInfo;
  readonly checks: readonly Check[];
  readonly baseline: Readonly<Record<string, unknown>>;
  readonly measured: Readonly<Record<string, unknown>>;
  readonly targets: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
}

export function ratio(measured: number | null, baseline: number | null): number | null {
  if (measured === null || baseline === null || baseline === 0) return null;
  return Math.round((measured / baseline) * 1000) / 1000;
}

/** Markdown summary of every result file, in suite order. */
export function summaryMarkdown(results: readonly { file: string; result: SuiteResult }[]): string {
  const out = ["# Benchmark results", "", "Written by `npm run bench` (bench/run.ts). Each suite measures its baseline in the same run;", "server pinned to one core, load driver to the other (see each file's `machine.pinning`).", ""];
  for (const { file, result: r } of results) {
    out.push(`## ${r.title}`, "", `\`bench/results/${file}\` · ${r.date.slice(0, 16).replace("T", " ")} UTC · ${r.machine.cpuModel} × ${r.machine.cores} · Bun ${r.machine.bun} · load avg ${r.machine.loadAverage.join(" ")}${r.machine.busyAtStart != null ? ` · CPU ${Math.round(r.machine.busyAtStart * 100)}% busy at start` : ""}`, "");
    out.push("| measure | baseline | measured | ratio | target | pass |", "|---|---:|---:|---:|---|:---:|");
    for (const c of r.checks) {
      out.push(`| ${c.name} | ${num(c.baseline, c.unit)} | ${num(c.measured, c.unit)} | ${c.ratio === null ? "" : c.ratio.toFixed(2)} | ${c.target} | ${c.pass === null ? "–" : c.pass ? "✅" : "❌"} |`);
    }
    if (r.notes.length > 0) out.push("", ...r.notes.map((n) => `- ${n}`));
    out.push("");
  }
  return out.join("\n");
}

function num(v: number | null, unit: string): string {
  if (v === null) return "";
  const s = v >= 1000 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(3);
  return unit === "" ? s : `${s} ${unit}`;
}
