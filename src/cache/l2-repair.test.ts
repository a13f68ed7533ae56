import { expect, test } from "bun:test";
import { L2Repair } from "./l2-repair.ts";

test("keys wait until removed; one noted again meanwhile keeps waiting; past the bound the whole tier is suspect", () => {
  const r = new L2Repair(3);
  expect(r.pending).toBe(false);
  r.note("a", 5, "put");
  r.note("a", 4, "put"); // an older failure does not replace the newer one
  r.note("b", 6, "delete");
  expect(r.suspect("a") && r.suspect("b") && !r.suspect("c")).toBe(true);
  const batch = r.take(10);
  expect(batch.map((e) => [e.key, e.ts, e.op])).toEqual([["a", 5, "put"], ["b", 6, "delete"]]);
  r.note("b", 7, "put");
  r.done(batch);
  expect(r.suspect("a")).toBe(false);
  expect(r.take(10).map((e) => [e.key, e.ts])).toEqual([["b", 7]]);
  r.note("c", 1, "put");
  r.note("d", 1, "put");
  r.note("e", 1, "put");
  expect(r.wholeTier).toBe(true);
  expect(r.size).toBe(0);
  expect(r.suspect("anything")).toBe(true);
  r.doneAll();
  expect(r.pending).toBe(false);
});
