import { tailConcentration } from "../engine/timeline.ts";
import type { LatencySummary, RunResult } from "./result.ts";

/** The human summary printed after a run. */
export function formatSummary(r: RunResult): string {
  const o = r.options;
  const load = r.mode === "open" ? `open loop at ${fmtInt(r.rate.target ?? 0)} req/s` : "closed loop";
  const lines = [
    `${r.label} · scenario ${r.scenario} · ${load} · ${o["connections"]} connections · ${o["duration"]}${o["warmup"] && o["warmup"] !== "0s" ? ` (+${o["warmup"]} warm-up)` : ""} · keys ${o["keys"]} · ${r.target}`,
    "",
    `  ${pad("ms", 14)}${["p50", "p90", "p99", "p99.9", "max", "mean"].map((h) => pad(h, 10, true)).join("")}`,
    row(r.mode === "open" ? "latency (CO)" : "latency", r.latencyMs),
  ];
  if (r.mode === "open") lines.push(row("service time", r.serviceTimeMs));
  const tags = Object.entries(r.byTag);
  if (tags.length > 1) for (const [tag, s] of tags) lines.push(row(`  ${tag}`, s));
  lines.push("");
  const target = r.rate.target === null ? "" : ` (target ${fmtInt(r.rate.target)})`;
  lines.push(`  achieved ${fmtInt(r.rate.achieved)} req/s${target}; ${fmtInt(r.requests.ok)} ok, ${fmtInt(r.requests.errors)} errors${errorKinds(r)}`);
  const lag = r.mode === "open" ? `; send lag p99 ${fmtMs(r.sendLagMs.p99)} ms (own, with a connection free: ${fmtMs(r.ownSendLagMs.p99)} ms)` : "";
  const gc = r.generatorGc === null ? "" : `; young collections every ${fmtMs(r.generatorGc.everyMs)} ms, pause mean ${fmtMs(r.generatorGc.meanPauseMs)} / max ${fmtMs(r.generatorGc.maxPauseMs)} ms`;
  lines.push(`  generator cpu ${Math.round(r.cpu.utilization * 100)}% of one core${lag}${gc}`);
  const st = r.ownStalls;
  if (st !== undefined && st.count > 0) {
    const ok = r.latencyByStatusWithoutOwnStallsMs?.["200"];
    const without = ok === undefined ? "" : `; 200s without them: p99 ${fmtMs(ok.p99)} ms`;
    lines.push(`  generator's own loop stalled ${st.count}${st.complete ? "" : "+"} times over ${fmtMs(st.thresholdMs)} ms (longest ${fmtMs(st.maxMs)} ms), ${fmtInt(st.requestsInFlight)} requests due or in flight then${without}`);
  }
  const tail = r.timeline === undefined ? undefined : tailConcentration(r.timeline, r.latencyMs.p99);
  if (tail !== undefined) {
    const w = r.timeline!.windowMs;
    lines.push(
      `  over ${tail.boundMs} ms: ${fmtInt(tail.slow)} requests in ${tail.windowsWithSlow} of ${tail.windows} ${w}-ms windows, half of them in ${tail.windowsForHalf}; most at ${fmtMs(tail.worst.atMs / 1000)} s (${fmtInt(tail.worst.slow)}, max ${fmtMs(tail.worst.maxMs)} ms)`,
    );
  }
  return lines.join("\n");
}

function errorKinds(r: RunResult): string {
  const kinds = Object.entries(r.errorsByKind);
  if (kinds.length === 0) return "";
  return ` (${kinds.map(([k, n]) => `${k}: ${fmtInt(n)}`).join(", ")})`;
}

function row(name: string, s: LatencySummary): string {
  return `  ${pad(name, 14)}${[s.p50, s.p90, s.p99, s.p99_9, s.max, s.mean].map((v) => pad(fmtMs(v), 10, true)).join("")}`;
}

export function fmtMs(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(3);
}

export function fmtInt(v: number): string {
  return Math.round(v).toLocaleString("en-US");
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padStart(n) : s.padEnd(n);
}
