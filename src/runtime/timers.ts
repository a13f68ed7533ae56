/** Longest delay a timer can hold (2^31 - 1 ms, ~24.8 days): asked for longer, Bun and Node fire it after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;
