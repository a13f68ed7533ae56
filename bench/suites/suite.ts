import type { MachineInfo } from "../lib/machine.ts";
import type { SuiteResult } from "../lib/results.ts";

/** What the runner hands a suite. */
export interface BenchContext {
  readonly root: string;
  readonly resultsDir: string;
  /** Raw generator runs (gitignored). */
  readonly rawDir: string;
  /** Where HTML/SVG latency reports go (loadtest/reports; elsewhere in --quick mode). */
  readonly reportsDir: string;
  /** Seconds per latency measurement (BENCH_SECONDS, default 10). */
  readonly seconds: number;
  /** Seconds per throughput measurement (half of `seconds`, at least 3): repeated, best kept. */
  readonly throughputSeconds: number;
  readonly serverCpu: string;
  readonly driverCpu: string;
  readonly wrk: { readonly path: string | null; readonly note: string };
  readonly machine: () => MachineInfo;
  readonly log: (line: string) => void;
}

/**
 * A bench plug-in: measures something and its baseline in one run. Add one by
 * writing a module that exports a Suite and listing it in suites/index.ts.
 */
export interface Suite {
  readonly name: string;
  /** Result file name under bench/results/. */
  readonly file: string;
  /** null when runnable, else why not (the runner skips it and says so). */
  unavailable(ctx: BenchContext): Promise<string | null>;
  run(ctx: BenchContext): Promise<SuiteResult>;
}

/** Thrown by a suite that finds at run time it cannot measure (reported as skipped, not failed). */
export class SuiteSkipped extends Error {}
