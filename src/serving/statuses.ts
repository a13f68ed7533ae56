/**
 * Per-value statuses. Numbers 0–4 match Feast's FieldStatus enum so the gRPC
 * edge can send them as they are; UNAVAILABLE is Quiver's own (storage could
 * not answer; the value, if any, is a default).
 */
export const Status = {
  INVALID: 0,
  PRESENT: 1,
  NULL_VALUE: 2,
  NOT_FOUND: 3,
  OUTSIDE_MAX_AGE: 4,
  UNAVAILABLE: 5,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

/** How many of `statuses` are UNAVAILABLE: the count both edges' Feast answers put in `x-quiver-unavailable`. */
export function unavailableCount(statuses: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < statuses.length; i++) if (statuses[i] === Status.UNAVAILABLE) n++;
  return n;
}

/** Status names indexed by code, for JSON answers. */
export const STATUS_NAMES: readonly string[] = ["INVALID", "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE", "UNAVAILABLE"];
