import { canPin, owned } from "./processes.ts";

export interface WrkRun {
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly errors: number;
  readonly non2xx: number;
  /** wrk's own latency (closed loop, not CO-corrected): context only. */
  readonly latencyP99Ms: number;
  readonly connections: number;
  readonly threads: number;
  readonly durationS: number;
}

/**
 * Finds wrk, installing Debian's package when running as root. Returns null with
 * a reason when it cannot, so the bench falls back to the generator's figures.
 */
export async function ensureWrk(log: (s: string) => void): Promise<{ path: string | null; note: string }> {
  const found = Bun.which("wrk");
  if (found !== null) return { path: found, note: "" };
  if (process.getuid?.() !== 0) return { path: null, note: "wrk not installed and not root: generator-only figures" };
  log("wrk: not found, installing with apt-get");
  const run = (args: string[]) => Bun.spawnSync(args, { stdout: "ignore", stderr: "pipe", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  let r = run(["apt-get", "install", "-y", "-qq", "wrk"]);
  if (r.exitCode !== 0) {
    run(["apt-get", "update", "-qq"]);
    r = run(["apt-get", "install", "-y", "-qq", "wrk"]);
  }
  const path = Bun.which("wrk");
  return path !== null ? { path, note: "wrk installed by the bench (apt-get)" } : { path: null, note: `wrk could not be installed: ${r.stderr.toString().slice(-300)}` };
}

/** A `done` hook that prints wrk's totals as one JSON line (parsed below). */
export const WRK_DONE_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(99)))
end
`;

/** Runs wrk pinned to `cpu` with a Lua script (which must include WRK_DONE_LUA). */
export async function runWrk(o: { wrk: string; url: string; script: string; connections: number; threads: number; durationS: number; cpu: string }): Promise<WrkRun> {
  const argv = [o.wrk, `-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, "--timeout", "2s", "-s", o.script, o.url];
  const proc = owned(Bun.spawn(canPin() ? ["taskset", "-c", o.cpu, ...argv] : argv, { stdout: "pipe", stderr: "pipe" }));
  const killer = setTimeout(() => proc.kill("SIGKILL"), (o.durationS + 30) * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  const line = /WRK_JSON (\{.*\})/.exec(out)?.[1];
  if (line === undefined) throw new Error(`wrk printed no result (exit ${proc.exitCode}): ${out.slice(-500)} ${err.slice(-500)}`);
  const j = JSON.parse(line) as { requests: number; duration_us: number; errors: number; non2xx: number; p99_us: number };
  return {
    requestsPerSec: Math.round(j.requests / (j.duration_us / 1e6)),
    requests: j.requests,
    errors: j.errors,
    non2xx: j.non2xx,
    latencyP99Ms: j.p99_us / 1000,
    connections: o.connections,
    threads: o.threads,
    durationS: o.durationS,
  };
}

export function wrkVersion(path: string): string {
  const r = Bun.spawnSync([path, "--version"], { stdout: "pipe", stderr: "pipe" });
  return (r.stdout.toString() + r.stderr.toString()).split("\n")[0]?.trim() ?? "";
}
