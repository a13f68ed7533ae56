import { describe, expect, test } from "bun:test";
import { parseJsonNotingFloats, writtenAsFloat } from "./exact-json.ts";

describe("parseJsonNotingFloats", () => {
  test("notes whole numbers written as float literals, which JSON.parse gives as integers; integer literals stay unnoted and exact", () => {
    const body = parseJsonNotingFloats('{"k":[1,1.0,1e2,-0.0,1.5,"1.0",9007199254740993,9007199254740993.0,-0],"r":[{"id":7E0}]}') as { k: unknown[]; r: Record<string, unknown>[] };
    expect(body.k).toEqual([1, 1, 100, -0, 1.5, "1.0", 9007199254740993n, 9007199254740992, -0]);
    expect(body.k.map((_, i) => writtenAsFloat(body.k, String(i)))).toEqual([false, true, true, true, false, false, false, true, false]);
    expect(writtenAsFloat(body.r[0]!, "id")).toBe(true);
    expect(writtenAsFloat(body, "k")).toBe(false);
  });

  test("text with no digit before a point or an exponent parses as parseJsonExact (nothing to note)", () => {
    const body = parseJsonNotingFloats('{"features":["v:conv_rate"],"entities":{"id":[1001,12345678901234567890]}}') as { entities: { id: unknown[] } };
    expect(body.entities.id).toEqual([1001, 12345678901234567890n]);
    expect(writtenAsFloat(body.entities.id, "0")).toBe(false);
  });
});
