import { resolve } from "node:path";
import { type Subprocess, spawn } from "bun";
import { liveProcesses } from "./live-processes.ts";

/** The repository root, so servers start the same whatever directory tests run from. */
const ROOT = resolve(import.meta.dir, "../..");

/** A `bun src/main.ts` server process started by a test, on a free port. */
export interface QuiverProcess {
  readonly url: string;
  /** host:port of the gRPC edge (a free port unless `args` chose one); undefined with `--grpc-port -1`. */
  readonly grpcAddress: string | undefined;
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the process printed so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/**
 * Flags for a server whose test is not about admission (a functional test must not depend on how busy
 * the machine is): no CPU overload shedding, a plain FIFO admission queue whose waits may last 5 s. Run
 * beside four busy loops on two cores, servers started without them answered their tests' requests 503:
 * loop turns of hundreds of milliseconds, and, with no warm-up (below), the concurrency limit still at
 * its start-up floor probe (2 in flight). Admission's own tests keep the defaults.
 */
export const NO_SHEDDING: readonly string[] = ["--overload-delay-ms", "0", "--admission-queue-target-ms", "0", "--admission-queue-timeout-ms", "5000"];

/**
 * Port 0 for HTTP and gRPC unless the test chose: parallel runs must not collide on 6570.
 * No start-up warm-up unless the test asks for one: it costs each server ~2 s (more against
 * Redis shards) and changes no behaviour a test checks; test/warmup.test.ts covers it.
 */
function withFreePorts(args: string[]): string[] {
  const given = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
  return ["--port", "0", ...(given("--grpc-port") ? [] : ["--grpc-port", "0"]), ...(given("--warmup-lookups") ? [] : ["--warmup-lookups", "0"]), ...args];
}

/**
 * Starts the real server with `args` (port 0 → the OS picks a free one) and
 * waits for its "listening" lines. Fails with the process output if it exits
 * or does not come up within `timeoutMs`.
 */
export async function startQuiver(args: string[], timeoutMs = 30_000): Promise<QuiverProcess> {
  const proc = spawn([process.execPath, "src/main.ts", ...withFreePorts(args)], { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  // A server a test leaves behind (its stop timed out: one spun at 100% CPU for minutes) is killed when the run ends.
  liveProcesses.set(proc.pid, proc);
  void proc.exited.then(() => liveProcesses.delete(proc.pid));
  const at = args.indexOf("--grpc-port");
  const grpcOff = (at >= 0 && args[at + 1] === "-1") || args.includes("--grpc-port=-1");
  let out = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true });
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = /listening on (http:\/\/[^\s]+)/.exec(out);
    const g = /gRPC listening on ([^\s]+)/.exec(out);
    if (m && (g || grpcOff)) {
      return {
        url: m[1]!,
        grpcAddress: g?.[1],
        proc,
        output: () => out,
        stop: async (signal = "SIGTERM") => {
          proc.kill(signal);
          return await proc.exited;
        },
      };
    }
    if (proc.exitCode !== null) throw new Error(`quiver exited with ${proc.exitCode}:\n${out}`);
    await Bun.sleep(25);
  }
  proc.kill("SIGKILL");
  throw new Error(`quiver did not start within ${timeoutMs} ms:\n${out}`);
}

/** Runs the server to completion (for start-up failures) and returns its exit code and output. */
export async function runQuiverToExit(args: string[]): Promise<{ code: number; output: string }> {
  const proc = spawn([process.execPath, "src/main.ts", ...withFreePorts(args)], { cwd: ROOT, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  // A server a test leaves behind (its stop timed out: one spun at 100% CPU for minutes) is killed when the run ends.
  liveProcesses.set(proc.pid, proc);
  void proc.exited.then(() => liveProcesses.delete(proc.pid));
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, output: stdout + stderr };
}
