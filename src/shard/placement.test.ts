import { expect, test } from "bun:test";
import { judgePlacement, type PlacementRecord, parsePlacement, ringSignature } from "./placement.ts";

const A = ringSignature(160, [{ id: "s2", weight: 1 }, { id: "s1", weight: 2 }]);
const B = ringSignature(160, [{ id: "s1", weight: 2 }, { id: "s2", weight: 1 }, { id: "s3", weight: 1 }]);
const placed = (ring: string): PlacementRecord => ({ ring, shards: [], defaults: {} });
const moving = (from: string, to: string): PlacementRecord => ({ ...placed(from), movingTo: to });

test("a ring is named by its virtual nodes and its shards in name order", () => {
  expect(A).toBe("160 vnodes: s1:2,s2:1");
  expect(ringSignature(100, [{ id: "s1", weight: 2 }, { id: "s2", weight: 1 }])).not.toBe(A);
});

test("a start records its ring over nothing or the same ring, and otherwise refuses or, asked to, moves the keys", () => {
  expect(judgePlacement([], A, false)).toEqual({ kind: "record" });
  expect(judgePlacement([placed(A), placed(A)], A, false)).toEqual({ kind: "record" });
  const other = judgePlacement([placed(A), placed(B)], A, false);
  expect(other.kind).toBe("refuse");
  expect(other.kind === "refuse" && other.reason).toContain(`the shards hold keys placed by [${B}], but this topology places them by [${A}]`);
  expect(judgePlacement([placed(A)], B, true)).toEqual({ kind: "migrate", from: placed(A) });
});

test("while a move is recorded only its target, asked to take it over, may start", () => {
  const m = moving(A, B);
  for (const [ring, migrate] of [[A, false], [A, true], [B, false]] as const) {
    const verdict = judgePlacement([placed(B), m], ring, migrate);
    expect(verdict.kind).toBe("refuse");
    expect(verdict.kind === "refuse" && verdict.reason).toContain(`being moved from [${A}] to [${B}]`);
  }
  expect(judgePlacement([placed(B), m], B, true)).toEqual({ kind: "migrate", from: m });
});

test("a stored record that is not one is ignored", () => {
  expect(parsePlacement("not json")).toBeUndefined();
  expect(parsePlacement('{"ring": 1, "shards": [], "defaults": {}}')).toBeUndefined();
  expect(parsePlacement('{"ring": "x", "shards": [], "defaults": {}, "movingTo": 2}')).toBeUndefined();
  expect(parsePlacement(JSON.stringify(moving(A, B)))).toEqual(moving(A, B));
});
