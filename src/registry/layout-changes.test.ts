import { expect, test } from "bun:test";
import { layoutConflicts } from "./layout-changes.ts";
import { driverViews } from "../../test/support/driver-views.ts";

const registry = driverViews;
const f = (name: string, type = "float64") => ({ name, type });

test("under one version a view's feature list may only grow at its end; every other change is named with its view's path", () => {
  const before = registry([
    { name: "same", features: [f("a"), f("b")] },
    { name: "grown", features: [f("a")] },
    { name: "dropped", features: [f("a"), f("b")] },
    { name: "renamed", features: [f("a"), f("b")] },
    { name: "retyped", features: [f("a"), f("b")] },
    { name: "resized", features: [f("e", "embedding(4)")] },
    { name: "bumped", version: 1, features: [f("a"), f("b")] },
    { name: "removed", features: [f("a")] },
  ]);
  const after = registry([
    { name: "added", features: [f("x")] },
    { name: "same", features: [f("a"), f("b")] },
    { name: "grown", features: [f("a"), f("b", "string"), f("c")] },
    { name: "dropped", features: [f("a")] },
    { name: "renamed", features: [f("a"), f("c")] },
    { name: "retyped", features: [f("a"), f("b", "int64")] },
    { name: "resized", features: [f("e", "embedding(8)")] },
    { name: "bumped", version: 2, features: [f("b", "string")] },
  ]);
  const issues = layoutConflicts(before, after);
  expect(issues.map((i) => i.path)).toEqual(["featureViews[3].features", "featureViews[4].features", "featureViews[5].features", "featureViews[6].features"]);
  expect(issues.map((i) => i.message.slice(0, i.message.indexOf(":")))).toEqual([
    'view "dropped" keeps version 1 but drops "b" (float64), feature 1 of 2',
    'view "renamed" keeps version 1 but has "c" (float64) where "b" (float64) was, feature 1',
    'view "retyped" keeps version 1 but changes "b" (feature 1) from float64 to int64',
    'view "resized" keeps version 1 but changes "e" (feature 0) from embedding(4) to embedding(8)',
  ]);
  expect(issues[0]!.message).toContain("bump its version (rows then start empty under dropped@2) or only append features");
  expect(layoutConflicts(before, before)).toEqual([]);
});
