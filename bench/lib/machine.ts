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
