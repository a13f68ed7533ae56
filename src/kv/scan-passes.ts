import { ScanRestartError } from "./storage-errors.ts";

/**
 * How many times a whole scan is started again after its cursor's process
 * changed (ScanRestartError) before the caller gives up as it does on a shard
 * that does not answer. One failover or restart costs one restart; more in a
 * row means the shard is flapping.
 */
export const SCAN_RESTARTS = 3;

/**
 * Runs `pass`, one whole scan from cursor "0", and runs it again from the start
 * when a page says its cursor was issued by another server process
 * (ScanRestartError: a failover or a restart of a shard's primary), at most
 * `restarts` times; after that the error is thrown. Any other error is thrown
 * at once. `onRestart` hears each restart (1, 2, ...) before the next pass.
 * What a pass keeps across passes is the caller's business: a pass that
 * returned saw every key that existed throughout it, an aborted one did not.
 */
export async function scanPasses<T>(pass: () => Promise<T>, onRestart?: (error: ScanRestartError, restart: number) => void, restarts = SCAN_RESTARTS): Promise<T> {
  for (let restart = 1; ; restart++) {
    try {
      return await pass();
    } catch (error) {
      if (!(error instanceof ScanRestartError) || restart > restarts) throw error;
      onRestart?.(error, restart);
    }
  }
}
