import { formatRfc3339 } from "../../serving/index.ts";
import type { ByteWriter } from "./byte-writer.ts";

/** Start of year 10000 UTC: beyond it (and before 1970) the rare case goes through formatRfc3339. */
const YEAR_10000_MS = 253402300800000;
const DAY_MS = 86_400_000;

/**
 * Writes `"<RFC 3339>"` exactly as formatRfc3339 spells it (second precision
 * when the time has no milliseconds, else three digits; 0 is the epoch),
 * with no Date object and no string: a Feast answer carries one timestamp per
 * value. Civil date from days since the epoch: Howard Hinnant's algorithm.
 */
export function jsonRfc3339(w: ByteWriter, ms: number): void {
  if (!(ms >= 0 && ms < YEAR_10000_MS)) {
    w.byte(0x22);
    w.ascii(formatRfc3339(ms));
    w.byte(0x22);
    return;
  }
  const t = Math.trunc(ms); // a Date's time value drops fractions of a millisecond
  const days = Math.floor(t / DAY_MS);
  let rest = t - days * DAY_MS;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  const milli = rest - second * 1000;
  w.byte(0x22);
  digits(w, year, 4);
  w.byte(0x2d);
  digits(w, month, 2);
  w.byte(0x2d);
  digits(w, day, 2);
  w.byte(0x54);
  digits(w, hour, 2);
  w.byte(0x3a);
  digits(w, minute, 2);
  w.byte(0x3a);
  digits(w, second, 2);
  if (ms % 1000 !== 0) {
    w.byte(0x2e);
    digits(w, milli, 3);
  }
  w.byte(0x5a);
  w.byte(0x22);
}

/** `v` zero-padded to `width` digits. */
function digits(w: ByteWriter, v: number, width: number): void {
  let d = 1;
  for (let p = 10; p <= v; p *= 10) d++;
  for (let i = d; i < width; i++) w.byte(0x30);
  w.decimal(v);
}
