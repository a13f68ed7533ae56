import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { KeyBatch } from "../kv/key-batch.ts";
import { compileJoinKey } from "../registry/index.ts";
import { ColumnEntities, entityKeyBytes, entityKeys, keyPart, parseEntities, RowEntities } from "./entity-input.ts";

const int = compileJoinKey("driver_id", "int64");
const str = compileJoinKey("customer_id", "string");

describe("entity keys", () => {
  test("int64 keys are canonical whether sent as number or decimal string", () => {
    expect(keyPart(int, 1001, "p")).toBe("driver_id=i1001");
    expect(keyPart(int, "1001", "p")).toBe("driver_id=i1001");
    expect(keyPart(int, "-0", "p")).toBe("driver_id=i0");
    expect(keyPart(int, "9223372036854775807", "p")).toBe("driver_id=i9223372036854775807");
  });

  test("int64 keys reject fractions, overflow, leading zeros and other types with the path", () => {
    expect(() => keyPart(int, 1.5, "entities[0].driver_id")).toThrow("entities[0].driver_id: expected int64 (an integer or decimal string in [-2^63, 2^63 − 1]), got number 1.5");
    expect(() => keyPart(int, "9223372036854775808", "p")).toThrow("int64 out of range");
    expect(() => keyPart(int, "007", "p")).toThrow(/expected int64/);
    expect(() => keyPart(int, 2 ** 60, "p")).toThrow("p: an integer past 2^53 sent as a JSON number arrives rounded (read as 1152921504606846976)");
    expect(() => keyPart(int, 9007199254740993n, "p")).not.toThrow();
    expect(keyPart(int, 9007199254740993n, "p")).toBe(keyPart(int, "9007199254740993", "p"));
    expect(() => keyPart(int, 2n ** 63n, "p")).toThrow("p: int64 out of range: 9223372036854775808");
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
    expect(() => parseEntities({ a: [1, 2], b: [1] }, "entities", 10)).toThrow("entities.b: has 1 values; the entity columns before it have 2");
    expect(() => parseEntities([{ a: 1 }, 3], "entities", 10)).toThrow("entities[1]: expected an object of join keys, got integer 3");
    expect(() => parseEntities({ a: 5 }, "entities", 10)).toThrow("entities.a: expected a list of values, got integer 5");
    expect(() => parseEntities([{}, {}, {}], "entities", 2)).toThrow("entities: 3 entity rows; the limit is 2");
    expect(() => parseEntities("x", "entities", 2)).toThrow(/expected a list of entity rows or a map/);
  });
});

describe("entity keys as bytes", () => {
  const prefix = "view@2/";
  const prefixBytes = new TextEncoder().encode(prefix);
  const value = fc.oneof(
    fc.integer(),
    fc.maxSafeInteger(),
    fc.constantFrom(-0, 1.5, 2 ** 60, Number.NaN, null, true, "-0", "007", "9223372036854775807", "9223372036854775808", "x".repeat(1025)),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: "grapheme", maxLength: 4 }),
  );
  const outcome = (f: () => unknown) => {
    try {
      return { ok: f() };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };

  test("spell exactly what entityKeys spells, throw what it throws, and decline only non-ASCII strings (property)", () => {
    const batch = new KeyBatch();
    fc.assert(
      fc.property(fc.constantFrom([int], [str], [int, str]), fc.array(fc.tuple(value, value), { maxLength: 6 }), (keys, pairs) => {
        const rows = new RowEntities(
          pairs.map(([a, b]) => ({ driver_id: a, customer_id: b })),
          "entities",
        );
        const strings = outcome(() => entityKeys(rows, keys, prefix));
        const bytes = outcome(() => (entityKeyBytes(rows, keys, prefixBytes, batch) ? Array.from({ length: batch.count }, (_, i) => batch.key(i)) : "declined"));
        if (bytes.ok === "declined") {
          // Declined only for a string key outside ASCII (the string path, which the caller then takes, carries it).
          const stringKeys = keys.filter((k) => k.type === "string").map((k) => k.name);
          expect(pairs.some(([a, b]) => stringKeys.some((name) => [...String(name === "driver_id" ? a : b)].some((ch) => ch.charCodeAt(0) > 0x7f)))).toBe(true);
          return;
        }
        expect(bytes).toEqual(strings);
        if (bytes.ok !== undefined) for (let i = 0; i < batch.count; i++) expect(batch.ringStart[i]! - batch.start[i]!).toBe(prefix.length);
      }),
      { numRuns: 3000 },
    );
  });
});
