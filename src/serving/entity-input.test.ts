import { describe, expect, test } from "bun:test";
import { ColumnEntities, entityKeys, keyPart, parseEntities, RowEntities } from "./entity-input.ts";

const int = { name: "driver_id", type: "int64" as const };
const str = { name: "customer_id", type: "string" as const };

describe("entity keys", () => {
  test("int64 keys are canonical whether sent as number or decimal string", () => {
    expect(keyPart(int, 1001, "p")).toBe("driver_id=i1001");
    expect(keyPart(int, "1001", "p")).toBe("driver_id=i1001");
    expect(keyPart(int, "-0", "p")).toBe("driver_id=i0");
    expect(keyPart(int, "9223372036854775807", "p")).toBe("driver_id=i9223372036854775807");
  });

  test("int64 keys reject fractions, overflow, leading zeros and other types with the path", () => {
    expect(() => keyPart(int, 1.5, "entities[0].driver_id")).toThrow("entities[0].driver_id: expected int64 (a safe integer or decimal string), got number 1.5");
    expect(() => keyPart(int, "9223372036854775808", "p")).toThrow("int64 out of range");
    expect(() => keyPart(int, "007", "p")).toThrow(/expected int64/);
    expect(() => keyPart(int, 2 ** 60, "p")).toThrow(/expected int64/);
    expect(() => keyPart(int, undefined, "entities[2].driver_id")).toThrow('entities[2].driver_id: missing join key "driver_id" (int64)');
  });

  test("string keys are length-prefixed so any content is safe", () => {
    expect(keyPart(str, "a;b=c", "p")).toBe("customer_id=s5:a;b=c");
    expect(keyPart(str, "", "p")).toBe("customer_id=s0:");
    expect(() => keyPart(str, 42, "p")).toThrow("p: expected string, got integer 42");
    expect(() => keyPart(str, "x".repeat(1025), "p")).toThrow(/longer than 1024/);
  });

  test("composite keys join parts in the entity's order", () => {
    const rows = new RowEntities([{ customer_id: "c1", driver_id: 5 }], "e");
    expect(entityKeys(rows, [int, str])).toEqual(["driver_id=i5;customer_id=s2:c1"]);
  });
});

describe("entity input forms", () => {
  test("row form and columnar form give the same values and paths that point into the request", () => {
    const rows = parseEntities([{ driver_id: 1 }, { driver_id: 2 }], "entities", 10);
    const cols = parseEntities({ driver_id: [1, 2] }, "entities", 10);
    expect(rows).toBeInstanceOf(RowEntities);
    expect(cols).toBeInstanceOf(ColumnEntities);
    expect([rows.value(1, "driver_id"), cols.value(1, "driver_id")]).toEqual([2, 2]);
    expect([rows.pathOf(1, "driver_id"), cols.pathOf(1, "driver_id")]).toEqual(["entities[1].driver_id", "entities.driver_id[1]"]);
    expect(cols.keyNames).toEqual(["driver_id"]);
  });

  test("shape errors: ragged columns, non-object rows, too many rows", () => {
    expect(() => parseEntities({ a: [1, 2], b: [1] }, "entities", 10)).toThrow("entities.b: has 1 values; other join keys have 2");
    expect(() => parseEntities([{ a: 1 }, 3], "entities", 10)).toThrow("entities[1]: expected an object of join keys, got integer 3");
    expect(() => parseEntities({ a: 5 }, "entities", 10)).toThrow("entities.a: expected a list of values, got integer 5");
    expect(() => parseEntities([{}, {}, {}], "entities", 2)).toThrow("entities: 3 entity rows; the limit is 2");
    expect(() => parseEntities("x", "entities", 2)).toThrow(/expected a list of entity rows or a map/);
  });
});
