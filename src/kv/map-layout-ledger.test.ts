import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mismatchIssues, registryLayouts } from "../registry/index.ts";
import { driverViews, type ViewSketch } from "../../test/support/driver-views.ts";
import { FileLayoutLedger } from "./file-layout-ledger.ts";
import { MapLayoutLedger } from "./map-layout-ledger.ts";
import { StorageError } from "./storage-errors.ts";
import { compileRegistry } from "../registry/read-definitions.ts";

const f = (name: string, type = "float64") => ({ name, type });
const layoutsOf = (views: ViewSketch[]) => registryLayouts(driverViews(views));

test("a view version's layout may grow and shrink back along one list; any other change conflicts, and then nothing is recorded", async () => {
  const ledger = new MapLayoutLedger();
  const base: ViewSketch = { name: "v", features: [f("a"), f("b")] };
  expect(await ledger.reconcile(layoutsOf([base, { name: "w", features: [f("e", "embedding(4)")] }]))).toEqual({ mismatches: [], unreachable: [] });
  // Appended, then the shorter list again (a pod on the older file, a rolled-back deploy): both fine.
  expect((await ledger.reconcile(layoutsOf([{ name: "v", features: [f("a"), f("b"), f("c", "string")] }]))).mismatches).toEqual([]);
  expect((await ledger.reconcile(layoutsOf([base]))).mismatches).toEqual([]);
  // The ledger remembers the longer list: another feature in c's place conflicts.
  const cases: [ViewSketch, string][] = [
    [{ name: "v", features: [f("a"), f("b"), f("d", "string")] }, 'has "d" (string) where "c" (string) is stored, feature 2'],
    [{ name: "v", features: [f("b"), f("a")] }, 'has "b" (float64) where "a" (float64) is stored, feature 0'],
    [{ name: "v", features: [f("a"), f("b", "int64")] }, 'makes "b" (feature 1) int64 where float64 is stored'],
    [{ name: "v", features: [f("a"), f("c", "string")] }, 'has "c" (string) where "b" (float64) is stored, feature 1'],
    [{ name: "w", features: [f("e", "embedding(8)")] }, 'makes "e" (feature 0) embedding(8) where embedding(4) is stored'],
  ];
  for (const [view, difference] of cases) {
    // Beside a new view and an appended one, which are not recorded either while something conflicts.
    const registry = driverViews([view, { name: "fresh", features: [f("x")] }]);
    const { mismatches } = await ledger.reconcile(registryLayouts(registry));
    expect(mismatches.map((m) => m.field)).toEqual([`${view.name}@1`]);
    const [issue] = mismatchIssues(mismatches, registry);
    expect(issue!.path).toBe("featureViews[0].features");
    expect(issue!.message).toContain(difference);
    expect(issue!.message).toContain(`bump the view's version (rows then start empty under ${view.name}@2)`);
  }
  expect((await ledger.reconcile(layoutsOf([{ name: "fresh", features: [f("y")] }]))).mismatches).toEqual([]);
  // A new version is a new layout.
  expect((await ledger.reconcile(layoutsOf([{ name: "v", version: 2, features: [f("b"), f("a")] }]))).mismatches).toEqual([]);
});

test("the file ledger keeps what it recorded across opens, and writes nothing for a refused list", async () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-ledger-"));
  try {
    expect((await FileLayoutLedger.open(dir).reconcile(layoutsOf([{ name: "v", features: [f("a"), f("b")] }]))).mismatches).toEqual([]);
    const written = readFileSync(join(dir, "layouts.json"), "utf8");
    expect(JSON.parse(written)).toEqual({ "v@1": "a:float64\nb:float64", "v@1#keys": "driver_id:int64" });
    const reopened = FileLayoutLedger.open(dir);
    const { mismatches } = await reopened.reconcile(layoutsOf([{ name: "v", features: [f("b"), f("a")] }, { name: "u", features: [f("x")] }]));
    expect(mismatches).toEqual([{ field: "v@1", stored: "a:float64\nb:float64", where: join(dir, "layouts.json") }]);
    expect(readFileSync(join(dir, "layouts.json"), "utf8")).toBe(written);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a layout the file could not take (disk full) is not remembered either: the retry writes it; the failure is storage's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-ledger-"));
  try {
    const ledger = FileLayoutLedger.open(dir);
    expect((await ledger.reconcile(layoutsOf([{ name: "v", features: [f("a")] }]))).mismatches).toEqual([]);
    // The aside file cannot be written (a directory in its place stands for ENOSPC, EROFS, ...).
    mkdirSync(join(dir, "layouts.json.tmp"));
    const grown = layoutsOf([{ name: "v", features: [f("a"), f("extra", "int64")] }]);
    const failed = await ledger.reconcile(grown).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StorageError);
    expect((failed as StorageError).code).toBe("storage_write_failed");
    expect(JSON.parse(readFileSync(join(dir, "layouts.json"), "utf8"))).toEqual({ "v@1": "a:float64", "v@1#keys": "driver_id:int64" });
    rmSync(join(dir, "layouts.json.tmp"), { recursive: true });
    // Memory had recorded the appended feature: the retry found nothing to record and the file never learnt it.
    expect((await ledger.reconcile(grown)).mismatches).toEqual([]);
    expect(JSON.parse(readFileSync(join(dir, "layouts.json"), "utf8"))).toEqual({ "v@1": "a:float64\nextra:int64", "v@1#keys": "driver_id:int64" });
    // So a start with another feature in its place is refused.
    const { mismatches } = await FileLayoutLedger.open(dir).reconcile(layoutsOf([{ name: "v", features: [f("a"), f("country", "string")] }]));
    expect(mismatches.map((m) => m.field)).toEqual(["v@1"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a ledger file that is not JSON is refused at open, naming it", () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-ledger-"));
  try {
    writeFileSync(join(dir, "layouts.json"), '{"v@1": "a:flo');
    expect(() => FileLayoutLedger.open(dir)).toThrow(`${join(dir, "layouts.json")}: not readable as JSON`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a view version's join keys are recorded too: retyped, renamed or added under one version, stored rows would not be found", async () => {
  const keyed = (keys: { name: string; type: string }[], version = 1) =>
    compileRegistry({ entities: [{ name: "driver", joinKeys: keys }], featureViews: [{ name: "v", entities: ["driver"], version, features: [f("a")] }] });
  const ledger = new MapLayoutLedger();
  expect((await ledger.reconcile(registryLayouts(keyed([{ name: "driver_id", type: "int64" }])))).mismatches).toEqual([]);
  // Before, only features were recorded: a string driver_id was taken, and every stored row of v@1 answered NOT_FOUND.
  const retyped = keyed([{ name: "driver_id", type: "string" }]);
  const { mismatches } = await ledger.reconcile(registryLayouts(retyped));
  expect(mismatches).toEqual([{ field: "v@1#keys", stored: "driver_id:int64", where: "this process's memory" }]);
  const [issue] = mismatchIssues(mismatches, retyped);
  expect(issue!.path).toBe("featureViews[0].entities");
  expect(issue!.message).toContain("keeps rows of v@1 under the join keys [driver_id:int64], and this view's join keys are [driver_id:string]");
  expect(issue!.message).toContain("rows then start empty under v@2");
  for (const keys of [[{ name: "id", type: "int64" }], [{ name: "driver_id", type: "int64" }, { name: "zone", type: "string" }]]) {
    expect((await ledger.reconcile(registryLayouts(keyed(keys)))).mismatches.map((m) => m.field)).toEqual(["v@1#keys"]);
  }
  // The same keys again, and a new version with other keys, are fine.
  expect((await ledger.reconcile(registryLayouts(keyed([{ name: "driver_id", type: "int64" }])))).mismatches).toEqual([]);
  expect((await ledger.reconcile(registryLayouts(keyed([{ name: "driver_id", type: "string" }], 2)))).mismatches).toEqual([]);
});
