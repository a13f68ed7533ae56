import { expect, test } from "bun:test";
import { viewsToInvalidate } from "./registry-changes.ts";
import { driverViews } from "../../test/support/driver-views.ts";

const registry = driverViews;

test("a registry reload invalidates removed views and views whose version or feature list changed, and no other", () => {
  const f = (name: string, type = "float64") => ({ name, type });
  const before = registry([
    { name: "same", features: [f("a"), f("b")] },
    { name: "bumped", version: 1, features: [f("a")] },
    { name: "retyped", features: [f("a"), f("b")] },
    { name: "reordered", features: [f("a"), f("b")] },
    { name: "grown", features: [f("a")] },
    { name: "removed", features: [f("a")] },
  ]);
  const after = registry([
    { name: "same", features: [f("a"), f("b")] },
    { name: "bumped", version: 2, features: [f("a")] },
    { name: "retyped", features: [f("a"), f("b", "string")] },
    { name: "reordered", features: [f("b"), f("a")] },
    { name: "grown", features: [f("a"), f("c")] },
    { name: "added", features: [f("a")] },
  ]);
  expect(viewsToInvalidate(before, after).sort()).toEqual(["bumped", "grown", "removed", "reordered", "retyped"]);
});
