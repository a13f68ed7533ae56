import type { PlotRun } from "./load-runs.ts";

export interface PlotOptions {
  readonly title: string;
  /** Draws a dashed horizontal line at this latency (e.g. the SLO). */
  readonly sloMs?: number;
  readonly width?: number;
  readonly height?: number;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const NINE_LABELS = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];

/** x position of a percentile in "nines": 90% → 1, 99% → 2, 99.9% → 3. */
export function nines(percentile: number): number {
  return -Math.log10(1 - percentile / 100);
}

/**
 * Latency by percentile, HdrHistogram-plotter style: x in nines (log scale of
 * 1/(1-p)), y linear in ms, one line per run. Plain SVG text, no browser needed.
 */
export function latencySvg(runs: readonly PlotRun[], o: PlotOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 520;
  const m = { left: 70, right: 64, top: 48, bottom: 60 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const series = runs.map((r) => r.result.distribution.filter(([p]) => p < 100).map(([p, v]) => [nines(p), v] as const));
  const maxX = Math.min(6, Math.max(2, Math.ceil(Math.max(0, ...series.flatMap((s) => s.map(([x]) => x))) - 1e-9)));
  let maxY = Math.max(0.001, ...series.flatMap((s) => s.map(([, y]) => y)));
  if (o.sloMs !== undefined) maxY = Math.max(maxY, o.sloMs * 1.05);
  const yTop = niceCeil(maxY);
  const sx = (x: number) => m.left + (Math.min(x, maxX) / maxX) * pw;
  const sy = (y: number) => m.top + ph - (y / yTop) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(o.title)}</text>`);
  for (let i = 0; i <= maxX; i++) {
    const x = sx(i);
    out.push(`<line x1="${f(x)}" y1="${m.top}" x2="${f(x)}" y2="${m.top + ph}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${f(x)}" y="${m.top + ph + 18}" text-anchor="middle">${NINE_LABELS[i] ?? ""}</text>`);
  }
  const yStep = yTop / 5;
  for (let i = 0; i <= 5; i++) {
    const y = sy(i * yStep);
    out.push(`<line x1="${m.left}" y1="${f(y)}" x2="${m.left + pw}" y2="${f(y)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${m.left - 8}" y="${f(y + 4)}" text-anchor="end">${fmtTick(i * yStep)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 16}" text-anchor="middle">percentile</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms)</text>`);
  if (o.sloMs !== undefined && o.sloMs <= yTop) {
    const y = sy(o.sloMs);
    out.push(`<line x1="${m.left}" y1="${f(y)}" x2="${m.left + pw}" y2="${f(y)}" stroke="#555" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + 6}" y="${f(y - 5)}" fill="#555">SLO ${fmtTick(o.sloMs)} ms</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] ?? "#000";
    const pts = s.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ");
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
  });
  out.push(`<rect x="${m.left + 6}" y="${m.top + 4}" width="${Math.min(pw - 12, 560)}" height="${runs.length * 18 + 6}" fill="#ffffff" fill-opacity="0.85" stroke="#ddd"/>`);
  runs.forEach((r, i) => {
    const color = COLORS[i % COLORS.length] ?? "#000";
    const y = m.top + 14 + i * 18;
    const l = r.result.latencyMs;
    out.push(`<rect x="${m.left + 12}" y="${y - 9}" width="14" height="4" fill="${color}"/>`);
    out.push(`<text x="${m.left + 32}" y="${y - 3}">${esc(r.label)} — p50 ${fmtTick(l.p50)} · p99 ${fmtTick(l.p99)} · max ${fmtTick(l.max)} ms</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

/** 1, 2, 2.5, 5 × 10^k at or above v. */
function niceCeil(v: number): number {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * e >= v) return k * e;
  return 10 * e;
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return String(Math.round(v * 100) / 100);
  return String(Math.round(v * 1000) / 1000);
}

function f(v: number): string {
  return v.toFixed(1);
}

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
