import { invalid } from "../errors/index.ts";
import { describeValue } from "../registry/index.ts";

const ZONED = /(Z|[+-]\d{2}:?\d{2})$/i;
const ISO_LIKE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?/;

/**
 * An event time from a client: ms since epoch, or an ISO-8601 / RFC 3339 string.
 * A string without a zone is UTC (never the server's local time). Throws 400.
 */
export function parseEventTime(v: unknown, path: string): number {
  if (typeof v === "number") {
    if (Number.isFinite(v) && v >= 0) return v;
    throw invalid("invalid_value", path, `expected ms since epoch (>= 0), got ${describeValue(v)}`);
  }
  if (typeof v === "string" && ISO_LIKE.test(v)) {
    let s = v.trim().replace(" ", "T");
    if (s.length === 10) s += "T00:00:00";
    if (!ZONED.test(s)) s += "Z";
    const ms = Date.parse(s);
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  throw invalid("invalid_value", path, `expected ms since epoch or an RFC 3339 timestamp, got ${describeValue(v)}`);
}

/** RFC 3339 UTC with second precision as Feast prints it; 0 → the epoch. */
export function formatRfc3339(ms: number): string {
  if (ms === 0) return "1970-01-01T00:00:00Z";
  const iso = new Date(ms).toISOString();
  return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : iso;
}
