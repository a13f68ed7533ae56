import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { QuiverError } from "../../errors/index.ts";
import { int64Of, plainOfFeastValue, plainOfText } from "./values.ts";

/** The Long class protobufjs decodes int64 fields into. */
const Long = protobuf.util.Long as unknown as { fromNumber(n: number): LongValue; fromString(s: string): LongValue };
type LongValue = Parameters<typeof int64Of>[0];

describe("int64 from the wire", () => {
  test("safe integers become numbers; beyond 2^53 the exact decimal text, never a rounded number", () => {
    expect(int64Of(Long.fromNumber(1001))).toBe(1001);
    expect(int64Of(Long.fromNumber(-(2 ** 53) + 1))).toBe(-(2 ** 53) + 1);
    // -2^53 fits 53 bits but is not a safe integer (its neighbour -2^53-1 rounds to it): the text, as HTTP reads it.
    expect(int64Of(Long.fromString("-9007199254740992"))).toBe("-9007199254740992");
    expect(int64Of(Long.fromString("9007199254740992"))).toBe("9007199254740992");
    expect(int64Of(Long.fromString("9007199254740991"))).toBe(9007199254740991);
    expect(int64Of(Long.fromString("9007199254740993"))).toBe("9007199254740993");
    expect(int64Of(Long.fromString("-9223372036854775808"))).toBe("-9223372036854775808");
    expect(int64Of(42)).toBe(42);
  });
});

describe("Feast Values as plain values", () => {
  test("each oneof maps to its JS value; null_val is null; nothing set is undefined", () => {
    expect(plainOfFeastValue({ val: "int64_val", int64_val: Long.fromNumber(7) }, "v")).toBe(7);
    expect(plainOfFeastValue({ val: "double_val", double_val: 0.5 }, "v")).toBe(0.5);
    expect(plainOfFeastValue({ val: "string_val", string_val: "x" }, "v")).toBe("x");
    expect(plainOfFeastValue({ val: "bool_val", bool_val: true }, "v")).toBe(true);
    expect(plainOfFeastValue({ val: "int64_list_val", int64_list_val: { val: [Long.fromNumber(1), Long.fromNumber(2)] } }, "v")).toEqual([1, 2]);
    expect(plainOfFeastValue({ val: "string_list_val", string_list_val: { val: ["a"] } }, "v")).toEqual(["a"]);
    expect(plainOfFeastValue({ val: "null_val", null_val: 0 }, "v")).toBeNull();
    expect(plainOfFeastValue({}, "v")).toBeUndefined();
    expect(plainOfFeastValue(undefined, "v")).toBeUndefined();
  });

  test("bytes become a string only when they are UTF-8; other bytes are a 400 naming the path, never U+FFFD", () => {
    expect(plainOfFeastValue({ val: "bytes_val", bytes_val: new TextEncoder().encode("g\u00e9") }, "v")).toBe("g\u00e9");
    const refused = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as QuiverError;
      }
      throw new Error("not refused");
    };
    // g\xff and g\xfe both read as "g\ufffd" before: two keys, one entity.
    const e = refused(() => plainOfFeastValue({ val: "bytes_val", bytes_val: new Uint8Array([0x67, 0xff]) }, "entities.customer_id[0]"));
    expect(e).toBeInstanceOf(QuiverError);
    expect(e.path).toBe("entities.customer_id[0]");
    expect(e.message).toContain("not UTF-8");
    const list = refused(() => plainOfFeastValue({ val: "bytes_list_val", bytes_list_val: { val: [new Uint8Array([0x61]), new Uint8Array([0xfe])] } }, "rows[0].values.tags"));
    expect(list.path).toBe("rows[0].values.tags[1]");
  });
});

describe("pushed text parsed by type", () => {
  test("numbers, booleans in Python's spellings, JSON lists, join keys and times", () => {
    expect(plainOfText("12", "int64", "p")).toBe(12);
    expect(plainOfText("1.5", "float64", "p")).toBe(1.5);
    expect(plainOfText(" -2.5e-3 ", "float64", "p")).toBe(-0.0025);
    expect(plainOfText(".5", "float64", "p")).toBe(0.5);
    expect(plainOfText("True", "bool", "p")).toBe(true);
    expect(plainOfText("0", "bool", "p")).toBe(false);
    expect(plainOfText("[1, 2]", "int64[]", "p")).toEqual([1, 2]);
    // int64 text exact over the whole range; digits past it left as text for the registry's check to refuse.
    expect(plainOfText("9007199254740993", "int64", "p")).toBe(9007199254740993n);
    expect(plainOfText("-9223372036854775808", "int64", "p")).toBe(-9223372036854775808n);
    expect(plainOfText("007", "int64", "p")).toBe(7);
    expect(plainOfText("9223372036854775808", "int64", "p")).toBe("9223372036854775808");
    expect(plainOfText("[9223372036854775807, 1]", "int64[]", "p")).toEqual([9223372036854775807n, 1]);
    expect(plainOfText(" 1001 ", "int64-key", "p")).toBe("1001");
    expect(plainOfText("c1", "string-key", "p")).toBe("c1");
    expect(plainOfText("1763800000000", "time", "p")).toBe(1763800000000);
    expect(plainOfText("2026-11-22T11:00:00Z", "time", "p")).toBe("2026-11-22T11:00:00Z");
    expect(plainOfText("anything", undefined, "p")).toBe("anything");
  });

  test("text that does not parse is an invalid_argument naming the column", () => {
    for (const [text, type] of [
      ["1.5", "int64"],
      ["", "float64"],
      ["0x10", "float64"],
      ["0b1", "float64"],
      ["yes", "bool"],
      ["[1,", "float64[]"],
    ] as const) {
      try {
        plainOfText(text, type, "features.x");
        throw new Error("expected a throw");
      } catch (e) {
        expect(e).toBeInstanceOf(QuiverError);
        expect(e).toMatchObject({ kind: "invalid_argument", path: "features.x" });
      }
    }
  });
});
