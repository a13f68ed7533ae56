import type { RunResult } from "../../loadtest/output/result.ts";
import { canPin, owned } from "./processes.ts";

/**
 * Runs the load generator CLI as its own process pinned to the driver core, as an
 * operator would, and returns its JSON result (also kept under bench/results/raw).
 */
export async function runGenerator(o: { root: string; cpu: string; jsonPath: string; args: Readonly<Record<string, string | number>>; timeoutS: number }): Promise<RunResult> {
  const flags = Object.entries(o.args).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const argv = [process.execPath, "loadtest/cli.ts", ...flags, "--json", o.jsonPath, "--quiet"];
  const proc = owned(Bun.spawn(canPin() ? ["taskset", "-c", o.cpu, ...argv] : argv, { cwd: o.root, stdout: "pipe", stderr: "pipe" }));
  const killer = setTimeout(() => proc.kill("SIGKILL"), o.timeoutS * 1000);
  const [, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  if (proc.exitCode !== 0) throw new Error(`loadtest ${flags.join(" ")} failed (exit ${proc.exitCode}): ${err.slice(-800)}`);
  return (await Bun.file(o.jsonPath).json()) as RunResult;
}
