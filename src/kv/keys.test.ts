import { expect, test } from "bun:test";
import { encodeKeyPart, parseEntityKey } from "./keys.ts";

test("parseEntityKey reads back what encodeKeyPart wrote: ints, any string (with ; = : inside), composite keys", () => {
  const cases: [string, "int64" | "string", number | string][][] = [
    [["driver_id", "int64", 1001]],
    [["driver_id", "int64", -42]],
    // Past 2^53 as its decimal text (the same join key; a number would round).
    [["driver_id", "int64", "9223372036854775807"]],
    [["driver_id", "int64", "-9223372036854775808"]],
    [["customer_id", "string", "c1"]],
    [["customer_id", "string", "a;b=c:d"]],
    [["customer_id", "string", ""]],
    [["customer_id", "string", "é😀"]],
    [
      ["driver_id", "int64", 7],
      ["customer_id", "string", "x;y"],
    ],
  ];
  for (const parts of cases) {
    const key = parts.map(([name, type, value]) => encodeKeyPart(name, type, value)).join(";");
    expect(parseEntityKey(key)).toEqual(new Map(parts.map(([name, , value]) => [name, value])));
  }
});

test("parseEntityKey refuses what encodeKeyPart never writes", () => {
  for (const bad of ["", "driver_id", "driver_id=", "driver_id=x1", "driver_id=i", "driver_id=i1.5", "driver_id=i99999999999999999999", "driver_id=i9223372036854775808", "c=s5:abc", "c=s2:abc", "c=sx:ab", "a=i1;", ";a=i1", "=i1"]) {
    expect(parseEntityKey(bad)).toBeUndefined();
  }
});
