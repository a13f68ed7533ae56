const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;

/**
 * Parses a max age: a number of seconds or a string like `90s`, `15m`, `1h`,
 * `7d`, `2w`. 0 means "never too old". Undefined when malformed.
 */
export function parseDurationMs(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined;
  if (typeof v !== "string") return undefined;
  const m = DURATION.exec(v.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
