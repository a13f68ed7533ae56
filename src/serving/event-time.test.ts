import { describe, expect, test } from "bun:test";
import { QuiverError } from "../errors/index.ts";
import { isoToMs, parseEventTime } from "./event-time.ts";

const refused = (v: unknown) => {
  try {
    parseEventTime(v, "rows[0].event_timestamp");
  } catch (e) {
    return e instanceof QuiverError && e.path === "rows[0].event_timestamp" && e.kind === "invalid_argument";
  }
  return false;
};

describe("parseEventTime", () => {
  test("RFC 3339 and ISO-8601 texts, zoned or UTC", () => {
    expect(parseEventTime("2024-02-29T12:00:00Z", "t")).toBe(Date.UTC(2024, 1, 29, 12));
    expect(parseEventTime("2024-02-29 12:00:00", "t")).toBe(Date.UTC(2024, 1, 29, 12));
    expect(parseEventTime("2024-03-01", "t")).toBe(Date.UTC(2024, 2, 1));
    expect(parseEventTime("2024-03-01T10:00:00.123456+02:00", "t")).toBe(Date.UTC(2024, 2, 1, 8, 0, 0, 123));
    expect(parseEventTime("2000-02-29T00:00:00Z", "t")).toBe(Date.UTC(2000, 1, 29));
  });

  test("dates and times that do not exist are refused, not rolled forward", () => {
    for (const v of ["2024-02-30T00:00:00Z", "2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-01T24:00:00Z", "2024-01-01T10:60:00Z", "2024-01-01T10:00:61Z", "2024-01-01T10:00:00+24:00"]) {
      expect({ v, refused: refused(v) }).toEqual({ v, refused: true });
    }
    expect(isoToMs("2024-02-30T00:00:00Z")).toBeUndefined();
  });

  test("numbers are ms since epoch, stored whole", () => {
    expect(parseEventTime(1999.9999999, "t")).toBe(1999);
    expect(parseEventTime(0, "t")).toBe(0);
    for (const v of [-1, Number.NaN, Number.POSITIVE_INFINITY, "soon", null, {}]) expect(refused(v)).toBe(true);
  });
});
