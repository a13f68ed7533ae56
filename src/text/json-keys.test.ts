import { describe, expect, test } from "bun:test";
import { duplicateKeyPath } from "./json-keys.ts";

describe("duplicateKeyPath", () => {
  test("names the first key given twice in one object, with its path", () => {
    expect(duplicateKeyPath('{"rows":[{"a":1},{"id":1,"x":"id","id":2}]}')).toBe("rows[1].id");
    expect(duplicateKeyPath('{"a":1,"a":2}')).toBe("a");
    expect(duplicateKeyPath('[[1],[2,{"k":[{"z":0,"z":0}]}]]')).toBe("[1][1].k[0].z");
    expect(duplicateKeyPath('{"df":{"driver_id":[1],"driver_id":[2]}}')).toBe("df.driver_id");
  });

  test("keys are compared as the parse reads them: escapes, and quotes inside strings", () => {
    expect(duplicateKeyPath('{"a":1, "\\u0061" :2}')).toBe("a");
    expect(duplicateKeyPath('{"q\\"":1,"q\\\\":2}')).toBeUndefined();
    expect(duplicateKeyPath('{"q\\"":1,"q\\"":2}')).toBe('q"');
    expect(duplicateKeyPath('{"a":"\\\\","b":"a\\":","a":0}')).toBe("a");
  });

  test("rows that repeat the keys of the row before are checked in place, and a departure from them still finds a key twice", () => {
    expect(duplicateKeyPath('[{"a":1,"b":2},{"a":1,"b":2,"a":3}]')).toBe("[1].a");
    expect(duplicateKeyPath('[{"a":1,"b":2},{"b":1,"a":2},{"a":1,"a":2}]')).toBe("[2].a");
    expect(duplicateKeyPath('[{"a":1,"b":2},{"a":1},{"a":1,"b":2,"b":3}]')).toBe("[2].b");
    expect(duplicateKeyPath('[{"a":1},{"\\u0061":1,"a":2}]')).toBe("[1].a");
    expect(duplicateKeyPath('[{"ab":1,"b":2},{"a":1,"b":2},{"ab":1,"b":2}]')).toBeUndefined();
    const rows = Array.from({ length: 1000 }, (_, i) => `{"id":${i},"x":1,"y":[{"k":1,"v":2}]}`);
    expect(duplicateKeyPath(`{"rows":[${rows.join(",")}]}`)).toBeUndefined();
    rows[700] = '{"id":700,"x":1,"y":[{"k":1,"v":2,"k":3}]}';
    expect(duplicateKeyPath(`{"rows":[${rows.join(",")}]}`)).toBe("rows[700].y[0].k");
  });

  test("the same key in different objects, or as a value, is no duplicate", () => {
    expect(duplicateKeyPath('{"rows":[{"id":1},{"id":2}],"id":{"id":"id"}}')).toBeUndefined();
    expect(duplicateKeyPath('["a","a",{"a":["a"]}]')).toBeUndefined();
    expect(duplicateKeyPath('"x"')).toBeUndefined();
    expect(duplicateKeyPath("{}")).toBeUndefined();
  });

  test("a path past 200 characters is named by its end, where the key is", () => {
    const depth = 50_000;
    const text = `${'{"abc":'.repeat(depth)}{"k":1,"k":2}${"}".repeat(depth)}`;
    const path = duplicateKeyPath(text)!;
    expect(path.length).toBe(201);
    expect(path.startsWith("…")).toBe(true);
    expect(path.endsWith(".abc.abc.k")).toBe(true);
    expect(duplicateKeyPath('{"a":{"b":[{"k":1,"k":2}]}}')).toBe("a.b[0].k");
  });
});
