/**
 * Runs a full garbage collection where the runtime offers one (Bun.gc), so a
 * server can drop start-up garbage before serving; a no-op elsewhere.
 */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  bun?.gc(true);
}

/** Collects the young generation now (synchronously). */
export type YoungCollector = () => void;

/**
 * The runtime's young-generation collection, where it offers one to call
 * (Bun: `edenGC` from `bun:jsc`); `undefined` elsewhere (Deno's V8 sizes its
 * young generation by itself, see young-gc-pacer.ts).
 */
export async function loadYoungCollector(): Promise<YoungCollector | undefined> {
  if ((globalThis as { Bun?: unknown }).Bun === undefined) return undefined;
  try {
    const jsc = (await import("bun:jsc")) as { edenGC?: () => unknown };
    const eden = jsc.edenGC;
    return typeof eden === "function" ? () => void eden() : undefined;
  } catch {
    return undefined;
  }
}
