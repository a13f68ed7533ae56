/**
 * Runs a full garbage collection where the runtime offers one (Bun.gc), so a
 * server can drop start-up garbage before serving; a no-op elsewhere.
 */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  bun?.gc(true);
}

/** The runtime's young generation, where it lets us drive it. */
export interface YoungGc {
  /** Collects the young generation now (synchronously). */
  collect(): void;
  /** The heap's size as of the last collection, array buffers included (bytes). Costly on a large heap: it walks the heap's blocks (~200–300 µs with 1M rows). */
  heapBytes(): number;
}

/**
 * Bun's (`edenGC` and `heapSize` from `bun:jsc`); `undefined` elsewhere
 * (Deno's V8 sizes its young generation by itself, see young-gc-pacer.ts).
 */
export async function loadYoungGc(): Promise<YoungGc | undefined> {
  if ((globalThis as { Bun?: unknown }).Bun === undefined) return undefined;
  try {
    const jsc = (await import("bun:jsc")) as { edenGC?: () => unknown; heapSize?: () => number };
    const { edenGC, heapSize } = jsc;
    if (typeof edenGC !== "function" || typeof heapSize !== "function") return undefined;
    return { collect: () => void edenGC(), heapBytes: () => heapSize() };
  } catch {
    return undefined;
  }
}
