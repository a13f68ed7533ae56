import type { Subprocess } from "bun";

/** A server the bench started: its PID (for /proc), port, and a way to stop it by PID. */
export interface RunningServer {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly name: string;
  /** Command after `taskset -c <cpu>`. */
  readonly argv: readonly string[];
  /** CPU list for taskset (server: "1"). */
  readonly cpu: string;
  readonly port: number;
  /** Resolves readiness: a GET that must answer 200 (e.g. /readyz). */
  readonly readyPath: string;
  readonly timeoutMs: number;
  readonly cwd: string;
  readonly log: (line: string) => void;
  /** Extra environment for the server (on top of this process's; Bun.spawn does not see runtime changes to process.env). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Cleanups for what the bench started (servers, clusters), run by the runner on
 * SIGINT/SIGTERM: a suite's `finally` does not run when the process is killed.
 */
const cleanups = new Set<() => Promise<void>>();

export function onInterrupt(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

export async function runInterruptCleanups(): Promise<void> {
  const all = [...cleanups];
  cleanups.clear();
  await Promise.allSettled(all.map((f) => f()));
}

/**
 * A child the runner stops on SIGINT/SIGTERM until it exits (wrap Bun.spawn's
 * result): load drivers and workers were not registered, and a bench stopped
 * by SIGTERM (a supervisor, `timeout`) left them running (the match worker
 * ~111 s of CPU).
 */
export function owned<T extends Subprocess>(proc: T): T {
  const forget = onInterrupt(() => stopProcess(proc));
  void proc.exited.finally(forget);
  return proc;
}

/** A port nobody listens on right now (bind to 0, read it, release it). */
export function freePort(): number {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = s.port as number;
  s.stop(true);
  return port;
}

/** Whether `taskset` can pin processes here (else the bench runs unpinned and says so). */
export function canPin(): boolean {
  return Bun.which("taskset") !== null;
}

/**
 * Starts a server pinned with taskset and waits until readyPath answers 200.
 * taskset execs the command, so the PID is the server's own (its /proc/PID/status
 * is the server's memory).
 */
export async function startServer(o: StartOptions): Promise<RunningServer> {
  const argv = canPin() ? ["taskset", "-c", o.cpu, ...o.argv] : [...o.argv];
  const proc = Bun.spawn(argv, { cwd: o.cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", ...(o.env ? { env: { ...process.env, ...o.env } } : {}) });
  const output: string[] = [];
  void drain(proc.stdout, output);
  void drain(proc.stderr, output);
  const url = `http://127.0.0.1:${o.port}`;
  const deadline = Date.now() + o.timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    try {
      const r = await fetch(url + o.readyPath, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) {
        o.log(`${o.name}: ready on ${url} (pid ${proc.pid})`);
        const forget = onInterrupt(() => stopProcess(proc));
        const stop = async () => {
          forget();
          await stopProcess(proc);
        };
        return { name: o.name, pid: proc.pid, port: o.port, url, stop };
      }
    } catch {
      // not listening yet
    }
    await Bun.sleep(200);
  }
  await stopProcess(proc);
  throw new Error(`${o.name} did not become ready in ${o.timeoutMs} ms (exit ${proc.exitCode}); output:\n${output.join("").slice(-2000)}`);
}

/** SIGTERM, then SIGKILL after 5 s: only the process we started, by its PID. */
export async function stopProcess(proc: Subprocess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill("SIGTERM");
  const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await proc.exited;
  clearTimeout(t);
}

/** Resident memory in MB from /proc/PID/status (VmRSS, and the peak VmHWM). */
export async function memoryMb(pid: number): Promise<{ rssMb: number; peakMb: number } | null> {
  try {
    const text = await Bun.file(`/proc/${pid}/status`).text();
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
    return { rssMb: round1(kb("VmRSS") / 1024), peakMb: round1(kb("VmHWM") / 1024) };
  } catch {
    return null;
  }
}

async function drain(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    sink.push(dec.decode(chunk));
    if (sink.length > 200) sink.splice(0, sink.length - 200);
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export async function cpuSeconds(pid: number): Promise<number | null> {
  const c = await procCounters(pid);
  return c === null ? null : c.userS + c.systemS;
}

/** A process's CPU seconds in user and kernel mode and its minor page faults so far, from /proc/PID/stat. */
export interface ProcCounters {
  readonly userS: number;
  readonly systemS: number;
  readonly minorFaults: number;
}

export async function procCounters(pid: number): Promise<ProcCounters | null> {
  try {
    const stat = await Bun.file(`/proc/${pid}/stat`).text();
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state is field 3, minflt 10, utime 14 and stime 15 (1-based over the whole line).
    return { userS: Number(fields[11]) / 100, systemS: Number(fields[12]) / 100, minorFaults: Number(fields[7]) };
  } catch {
    return null;
  }
}

/**
 * Pins a running process (this one, for in-process measurements, or a helper
 * it started) to `cpus` with `taskset -cp`; a no-op where taskset is missing.
 */
export function pinProcess(pid: number, cpus: string): void {
  if (!canPin()) return;
  const r = Bun.spawnSync(["taskset", "-cp", cpus, String(pid)], { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`taskset -cp ${cpus} ${pid}: ${r.stderr.toString().trim()}`);
}
