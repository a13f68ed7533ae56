import os from "node:os";

/** Where the figures were measured: they mean little without it. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly bun: string;
  readonly loadAverage: readonly number[];
  readonly pinning: string;
  /** CPU busy share (all cores) just before the suite started; > 0.15 means a noisy start. */
  readonly busyAtStart?: number | null;
}

export function machineInfo(pinning: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    bun: Bun.version,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    pinning,
  };
}

/** Share of all CPUs busy over `ms`, from /proc/stat (null where there is no /proc). */
export async function cpuBusyShare(ms = 1000): Promise<number | null> {
  const sample = async (): Promise<[number, number] | null> => {
    try {
      const line = (await Bun.file("/proc/stat").text()).split("\n")[0] ?? "";
      const v = line.trim().split(/\s+/).slice(1).map(Number);
      const idle = (v[3] ?? 0) + (v[4] ?? 0);
      return [v.reduce((a, b) => a + b, 0), idle];
    } catch {
      return null;
    }
  };
  const a = await sample();
  await Bun.sleep(ms);
  const b = await sample();
  if (a === null || b === null || b[0] === a[0]) return null;
  return Math.round((1 - (b[1] - a[1]) / (b[0] - a[0])) * 100) / 100;
}

/** One core's CPU time so far (jiffies, all and idle), from /proc/stat; null where there is none. */
export async function coreTicks(cpu: string): Promise<{ readonly total: number; readonly idle: number } | null> {
  try {
    const line = (await Bun.file("/proc/stat").text()).split("\n").find((l) => l.startsWith(`cpu${cpu} `));
    if (line === undefined) return null;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    return { total: v.slice(0, 8).reduce((a, b) => a + b, 0), idle: (v[3] ?? 0) + (v[4] ?? 0) };
  } catch {
    return null;
  }
}

/** Share of a core busy between two `coreTicks` readings (null when either is missing or no time passed). */
export function coreBusy(a: { total: number; idle: number } | null, b: { total: number; idle: number } | null): number | null {
  if (a === null || b === null || b.total <= a.total) return null;
  return Math.round((1 - (b.idle - a.idle) / (b.total - a.total)) * 100) / 100;
}

/**
 * Waits (up to maxWaitS) for the machine to be nearly idle before measuring: on a
 * shared 2-core box, another process's burst would otherwise land in the figures.
 * Returns the busy share last seen, which the results record.
 */
export async function waitForQuiet(maxWaitS: number, log: (s: string) => void, threshold = 0.15): Promise<number | null> {
  const deadline = Date.now() + maxWaitS * 1000;
  let busy = await cpuBusyShare();
  while (busy !== null && busy > threshold && Date.now() < deadline) {
    log(`  machine ${Math.round(busy * 100)}% busy before measuring; waiting for it to calm down`);
    busy = await cpuBusyShare(2000);
  }
  return busy;
}
