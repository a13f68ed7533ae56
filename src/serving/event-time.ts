import { invalid } from "../errors/index.ts";
import { describeValue } from "../registry/index.ts";

const ZONED = /(Z|[+-]\d{2}:?\d{2})$/i;
const ISO_LIKE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?/;
/** Date and time fields of an ISO-8601 / RFC 3339 text, and its zone offset when numeric. */
const FIELDS = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2}))?)?.*?(?:[+-](\d{2}):?(\d{2}))?$/;

/**
 * An event time from a client: ms since epoch, or an ISO-8601 / RFC 3339 string.
 * A string without a zone is UTC (never the server's local time). Stored as
 * whole milliseconds: a fraction of one is dropped, as the digits past
 * milliseconds of a string are (and as the streaming writers store times).
 * Throws 400.
 */
export function parseEventTime(v: unknown, path: string): number {
  if (typeof v === "number") {
    if (Number.isFinite(v) && v >= 0) return Math.floor(v);
    throw invalid("invalid_value", path, `expected ms since epoch (>= 0), got ${describeValue(v)}`);
  }
  if (typeof v === "string" && ISO_LIKE.test(v)) {
    let s = v.trim().replace(" ", "T");
    if (s.length === 10) s += "T00:00:00";
    if (!ZONED.test(s)) s += "Z";
    const ms = isoToMs(s);
    if (ms !== undefined) return ms;
  }
  throw invalid("invalid_value", path, `expected ms since epoch or an RFC 3339 timestamp, got ${describeValue(v)}`);
}

/**
 * ms since epoch of an ISO-8601 / RFC 3339 text with a zone, or undefined
 * when it names no real instant at or after the epoch. Date.parse alone rolls
 * impossible dates forward (2024-02-30 reads as March 1st) and takes hour 24:
 * each field is checked against the calendar first.
 */
export function isoToMs(s: string): number | undefined {
  const f = FIELDS.exec(s);
  if (f === null) return undefined;
  const year = Number(f[1]);
  const month = Number(f[2]);
  const day = Number(f[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (f[4] !== undefined && (Number(f[4]) > 23 || Number(f[5]) > 59 || (f[6] !== undefined && Number(f[6]) > 59))) return undefined;
  if (f[7] !== undefined && (Number(f[7]) > 23 || Number(f[8]) > 59)) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** RFC 3339 UTC with second precision as Feast prints it; 0 → the epoch. */
export function formatRfc3339(ms: number): string {
  if (ms === 0) return "1970-01-01T00:00:00Z";
  const iso = new Date(ms).toISOString();
  return ms % 1000 === 0 ? `${iso.slice(0, 19)}Z` : iso;
}
