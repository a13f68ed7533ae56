/**
 * Reads JavaScriptCore's GC log (BUN_JSC_logGC=1) interleaved with the
 * driver's `AT <request>` marks, and turns it into allocation per request.
 */

export interface AllocMeasure {
  /** Requests between the first and the last collection counted. */
  readonly requests: number;
  /** Allocation-triggered collections inside the window. */
  readonly collections: number;
  /** Bytes allocated per request, over whole GC cycles only (no partial cycle at either end). */
  readonly bytesPerRequest: number;
  /** Collections per 100k requests: how often the young generation is collected. */
  readonly gcPer100k: number;
  /** Uncertainty of bytesPerRequest from the mark resolution, in bytes. */
  readonly resolutionBytes: number;
}

/** Requests between two marks the driver writes: the resolution of "which request a GC followed". */
export const MARK_EVERY = 32;

/**
 * What the driver can run: its own cost, the parsing floor, and Quiver's
 * lookup by format and batch size; `-l1` cases put the L1 cache tier in front
 * of the store (as the Redis deployment runs it) and read from L1 hits.
 */
export const ALLOC_CASES = ["harness", "parse", "json-1", "json-100", "harness-msgpack", "parse-msgpack", "msgpack-1", "msgpack-100", "feast-1", "feast-100", "json-1-l1", "json-100-l1", "json-100-l1-partial"] as const;
export type AllocCase = (typeof ALLOC_CASES)[number];

const CYCLE = /bytes allocated this cycle: (\d+)/;
const MARK = /^AT (\d+)$/;

/**
 * `log` is the child's whole stderr. Collections are located between marks;
 * the bytes of cycles 2..k (each counted since the previous collection) are
 * divided by the requests between collection 1 and collection k. Returns null
 * when the window held fewer than 3 collections (run more requests).
 */
export function allocationPerRequest(log: string, totalRequests: number, markEvery = MARK_EVERY): AllocMeasure | null {
  const lines = log.split("\n");
  const start = lines.findIndex((l) => l.startsWith("ALLOC-WINDOW START"));
  const end = lines.findIndex((l) => l.startsWith("ALLOC-WINDOW END"));
  if (start < 0 || end < start) throw new Error("GC log: no ALLOC-WINDOW START/END marks (did the driver finish?)");
  let at = 0;
  const gcs: { at: number; bytes: number }[] = [];
  for (let i = start + 1; i < end; i++) {
    const line = lines[i]!;
    const mark = MARK.exec(line);
    if (mark) {
      at = Number(mark[1]);
      continue;
    }
    const cycle = CYCLE.exec(line);
    // The collection happened after request `at` and before `at + markEvery`: take the middle.
    if (cycle) gcs.push({ at: at + markEvery / 2, bytes: Number(cycle[1]) });
  }
  if (gcs.length < 3) return null;
  const first = gcs[0]!;
  const last = gcs[gcs.length - 1]!;
  const requests = last.at - first.at;
  let bytes = 0;
  for (let i = 1; i < gcs.length; i++) bytes += gcs[i]!.bytes;
  const bytesPerRequest = bytes / requests;
  return {
    requests,
    collections: gcs.length,
    bytesPerRequest: Math.round(bytesPerRequest),
    gcPer100k: Math.round((gcs.length / totalRequests) * 100_000 * 10) / 10,
    resolutionBytes: Math.round((bytesPerRequest * markEvery) / requests),
  };
}

/** Cell kinds JavaScriptCore runs unconditional finalizers over at every collection, young or full: code, and what hangs off it. */
export const CODE_CELL_KINDS = ["FunctionExecutable", "UnlinkedFunctionExecutable", "SymbolTable", "StructureRareData", "FunctionCodeBlock", "UnlinkedFunctionCodeBlock"] as const;

/** What bench/alloc/code-cells.ts reports for one build. */
export interface CodeCells {
  /** Live cells of CODE_CELL_KINDS after a full collection. */
  readonly cells: number;
  readonly byKind: Record<string, number>;
  /** Median pause (ms) of a young collection with nothing allocated since the last. */
  readonly idleYoungMs: number;
  /** Median time (ms) of a synchronous full collection (Bun.gc(true)). */
  readonly fullMs: number;
}
