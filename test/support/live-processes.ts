import type { Subprocess } from "bun";

/**
 * Every server process a test started (redis-server, Sentinel, nats-server)
 * and has not stopped yet, by pid: what test/support/global-teardown.ts kills
 * once the whole run is over. Tests stop their own servers; this catches the
 * ones a failed set-up left behind (a Promise.all of several starts that
 * rejected while the others started: their handles were never kept).
 */
export const liveProcesses = new Map<number, Subprocess>();

/** SIGKILLs every process still registered; answers how many there were. */
export function killLeftovers(): number {
  const n = liveProcesses.size;
  for (const pid of liveProcesses.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  liveProcesses.clear();
  return n;
}

// Outside `bun test` (whose runner does not emit it) a process's exit still cleans up.
process.on("exit", () => {
  killLeftovers();
});
