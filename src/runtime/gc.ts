/**
 * Runs a full garbage collection where the runtime offers one (Bun.gc), so a
 * server can drop start-up garbage before serving; a no-op elsewhere.
 */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  bun?.gc(true);
}
