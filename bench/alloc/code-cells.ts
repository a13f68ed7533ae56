import { edenGC, heapStats } from "bun:jsc";
import { CODE_CELL_KINDS, type CodeCells } from "./gc-log.ts";

/**
 * Child process of the `lookup-alloc` suite: what a process holds that every
 * young collection walks whatever it collects, and what such a collection
 * costs with nothing to collect.
 *
 *   bun bench/alloc/code-cells.ts <bare|http|grpc>
 *
 * `bare`: Bun with nothing loaded; `http`: a built Quiver with gRPC off
 * (`--grpc-port -1`, as the lookup benches run it); `grpc`: a built Quiver
 * as `npm start` builds it. JavaScriptCore runs its unconditional
 * finalizers over every live cell of CODE_CELL_KINDS (gc-log.ts) at every
 * collection, young or full, so the pause of a young collection has a floor
 * that grows with the code loaded, not with the garbage (src/app.ts, on
 * loading the gRPC edge).
 * Prints one JSON line: `{ cells, byKind, idleYoungMs, fullMs }`.
 */

/** Young collections timed, 5 ms apart (the median is reported). */
const SAMPLES = 41;
/** Full (synchronous) collections timed, 5 ms apart. */
const FULL_SAMPLES = 9;

async function main(): Promise<void> {
  const which = process.argv[2];
  if (which !== "bare" && which !== "http" && which !== "grpc") throw new Error("usage: code-cells.ts <bare|http|grpc>");
  let close = async (): Promise<void> => {};
  if (which !== "bare") {
    const { buildQuiver } = await import("../../src/app.ts");
    const { loadConfig } = await import("../../src/config/config.ts");
    const q = await buildQuiver(loadConfig(["--demo-entities", "1000", ...(which === "http" ? ["--grpc-port", "-1"] : [])], {}), { servesSockets: true });
    close = () => q.close();
  }
  Bun.gc(true);
  const counts = heapStats().objectTypeCounts as Record<string, number>;
  const byKind = Object.fromEntries(CODE_CELL_KINDS.map((k) => [k, counts[k] ?? 0]));
  const pauses: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await Bun.sleep(5);
    const t = performance.now();
    edenGC();
    pauses.push(performance.now() - t);
  }
  // Full collections mark every live cell, code included, then finalize as young ones do.
  const full: number[] = [];
  for (let i = 0; i < FULL_SAMPLES; i++) {
    await Bun.sleep(5);
    const t = performance.now();
    Bun.gc(true);
    full.push(performance.now() - t);
  }
  // Both sample counts are odd: the middle one is the median.
  const median = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[xs.length >> 1]! * 1000) / 1000;
  const out: CodeCells = { cells: Object.values(byKind).reduce((a, b) => a + b, 0), byKind, idleYoungMs: median(pauses), fullMs: median(full) };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  await close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`code-cells: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
