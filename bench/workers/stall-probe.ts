/**
 * Host stall probe: a busy loop on one core that reads the clock as fast as
 * it can for `--seconds` and prints, as one JSON line, every gap between two
 * reads longer than `--min-ms`. A gap is time this process did not run
 * though it never yielded: the kernel ran something else on its core, or the
 * hypervisor did not run the virtual CPU (a shared VM reports no steal time
 * for that). Run pinned (taskset) on an otherwise idle core, it shows the
 * stalls any server on that core would suffer, whatever its code: the floor
 * of a latency run's tail there. The first half second is not counted: the
 * process's own start (its JIT compiling the loop on a thread pinned to the
 * same core) would read as stalls.
 *
 *     taskset -c 1 bun bench/workers/stall-probe.ts --seconds 2
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "2" }, "min-ms": { type: "string", default: "0.2" } } });
const seconds = Number(values.seconds);
const minMs = Number(values["min-ms"]);
if (!(seconds > 0 && seconds <= 60)) throw new Error(`--seconds: expected a number in (0, 60], got ${values.seconds}`);
if (!(minMs > 0)) throw new Error(`--min-ms: expected a positive number, got ${values["min-ms"]}`);

const gaps: number[] = [];
const warmEnd = performance.now() + 500;
let sink = 0;
for (let t = performance.now(); t < warmEnd; t = performance.now()) sink += t;
const start = performance.now();
const end = start + seconds * 1000;
let last = start;
while (last < end) {
  const now = performance.now();
  if (now - last > minMs) gaps.push(Math.round((now - last) * 1000) / 1000);
  last = now;
}
process.stdout.write(`${JSON.stringify({ seconds: (last - start) / 1000, minMs, gapsMs: gaps, sink: sink > 0 })}\n`);
