import { canPin, owned } from "./processes.ts";

/** What a stall probe (bench/workers/stall-probe.ts) saw on one core. */
export interface HostStalls {
  readonly cpu: string;
  readonly seconds: number;
  /** Stalls over 1 ms, per second of probing. */
  readonly over1msPerS: number;
  /** Stalls over 5 ms, per second. */
  readonly over5msPerS: number;
  /** The longest stall (ms). */
  readonly maxMs: number;
  /** Share of the probe's time spent stalled (stalls over 0.2 ms). */
  readonly stalledShare: number;
}

/** Sums up a probe's gaps (ms) over `seconds` of probing. */
export function summarizeStalls(cpu: string, seconds: number, gapsMs: readonly number[]): HostStalls {
  let over1 = 0;
  let over5 = 0;
  let max = 0;
  let total = 0;
  for (const g of gapsMs) {
    if (g > 1) over1++;
    if (g > 5) over5++;
    if (g > max) max = g;
    total += g;
  }
  const per = (n: number) => Math.round((n / seconds) * 100) / 100;
  return { cpu, seconds, over1msPerS: per(over1), over5msPerS: per(over5), maxMs: Math.round(max * 100) / 100, stalledShare: Math.round((total / (seconds * 1000)) * 10_000) / 10_000 };
}

/** One line for a note: "2.5 stalls/s over 1 ms, 0.5/s over 5 ms, longest 6.7 ms (core 1, 3.0 s)". */
export function stallsText(s: HostStalls): string {
  return `${s.over1msPerS} stalls/s over 1 ms, ${s.over5msPerS}/s over 5 ms, longest ${s.maxMs} ms (core ${s.cpu}, ${s.seconds.toFixed(1)} s)`;
}

/** A suite's note: how the stalls were probed and what the probe saw before and after `what` (e.g. "the latency runs"). */
export function stallsNote(what: string, before: HostStalls | null, after: HostStalls | null): string {
  const seen = (s: HostStalls | null) => (s === null ? "n/a" : stallsText(s));
  return `Host stalls on the server core with nothing of ours busy (a busy loop reading the clock, bench/workers/stall-probe.ts: a gap between two reads is time the core ran something else, or the hypervisor did not run it): before ${what} ${seen(before)}; after them ${seen(after)}. A stall holds every request on that core for its length, a baseline's too: no p99 measured there can be under the stalls that hit 1% of its requests.`;
}

/** Runs the stall probe pinned to `cpu` for `seconds` (the probe keeps that core busy meanwhile). */
export async function probeHostStalls(root: string, cpu: string, seconds: number): Promise<HostStalls> {
  const argv = [process.execPath, "bench/workers/stall-probe.ts", "--seconds", String(seconds)];
  const proc = owned(Bun.spawn(canPin() ? ["taskset", "-c", cpu, ...argv] : argv, { cwd: root, stdout: "pipe", stderr: "pipe" }));
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`stall probe on core ${cpu} exited ${code}: ${err.trim()}`);
  const r = JSON.parse(out) as { seconds: number; gapsMs: number[] };
  return summarizeStalls(cpu, r.seconds, r.gapsMs);
}
