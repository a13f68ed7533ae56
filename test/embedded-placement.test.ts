import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { DurableKvNode } from "../src/kv/durable-node.ts";
import { checkNodeFiles, placeEmbeddedRows } from "../src/store/embedded-placement.ts";
import { ShardedStore } from "../src/store/sharded-store.ts";
import { driverStatuses } from "./support/driver-statuses.ts";
import { rejectionOf } from "./support/rejection.ts";

/**
 * The durable embedded store started with another ring than its data
 * directory was written with (--embedded-nodes, --vnodes): every row is moved
 * to its owner first, so no lookup answers NOT_FOUND for a stored row, and node
 * files off the ring are emptied into it and removed.
 */
const dir = mkdtempSync(join(tmpdir(), "quiver-embedded-placement-"));
const DRIVERS = 300;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const start = (more: string[]): Promise<Quiver> => buildQuiver(loadConfig(["--data-dir", dir, "--demo-entities", String(DRIVERS), "--grpc-port", "-1", ...more], {}));

const statuses = (q: Quiver): Promise<Record<string, number>> => driverStatuses(q, DRIVERS);

const ring = () => (JSON.parse(readFileSync(join(dir, "placement.json"), "utf8")) as { ring: string }).ring;

test("fewer nodes, other virtual nodes, more nodes: every stored row is found after each restart", async () => {
  const first = await start([]);
  const stored = await statuses(first);
  expect(stored).toEqual({ PRESENT: DRIVERS });
  await first.close();
  expect(ring()).toBe("160 vnodes: embedded-0:1,embedded-1:1,embedded-2:1,embedded-3:1");

  for (const [more, expected] of [
    [["--embedded-nodes", "2"], "160 vnodes: embedded-0:1,embedded-1:1"],
    [["--embedded-nodes", "2", "--vnodes", "40"], "40 vnodes: embedded-0:1,embedded-1:1"],
    [["--embedded-nodes", "5", "--vnodes", "40"], "40 vnodes: embedded-0:1,embedded-1:1,embedded-2:1,embedded-3:1,embedded-4:1"],
  ] as const) {
    const q = await start([...more]);
    try {
      expect(await statuses(q)).toEqual(stored);
    } finally {
      await q.close();
    }
    expect(ring()).toBe(expected);
  }
  // The two nodes dropped on the way were emptied and removed; the ones back on the ring were made anew.
  for (let i = 0; i < 5; i++) expect(existsSync(join(dir, `embedded-${i}.sqlite`))).toBe(true);
  expect(existsSync(join(dir, "embedded-5.sqlite"))).toBe(false);
});

test("a start cut short before a drained file was removed finishes at the next start: the file's rows, already moved, change nothing", async () => {
  const spread = await start(["--embedded-nodes", "5", "--vnodes", "40"]);
  await spread.close();
  // The file with its write-ahead log, where SQLite may still hold its latest commits.
  const parts = ["", "-wal"].filter((x) => existsSync(join(dir, `embedded-3.sqlite${x}`)));
  for (const x of parts) copyFileSync(join(dir, `embedded-3.sqlite${x}`), join(dir, `copy${x}`));
  const merged = await start(["--embedded-nodes", "2", "--vnodes", "40"]);
  await merged.close();
  // As if the process had died after moving embedded-3's rows and recording the ring, but before deleting the file.
  for (const x of parts) renameSync(join(dir, `copy${x}`), join(dir, `embedded-3.sqlite${x}`));
  const again = await start(["--embedded-nodes", "2", "--vnodes", "40"]);
  try {
    expect(await statuses(again)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await again.close();
  }
  expect(existsSync(join(dir, "embedded-3.sqlite"))).toBe(false);
});

test("a move cut short, then a start with the ring it was moving from: the next start scans, and every row is found", async () => {
  const four = await start(["--embedded-nodes", "4", "--vnodes", "160"]);
  expect(await statuses(four)).toEqual({ PRESENT: DRIVERS });
  await four.close();
  // A start with 2 nodes dies (kill -9) after its first page of rows moved: the record named the 4-node ring still,
  // so the next start on 4 nodes skipped the scan and answered NOT_FOUND for the rows already moved.
  const nodes = await Promise.all([0, 1].map((i) => DurableKvNode.open(`embedded-${i}`, join(dir, `embedded-${i}.sqlite`))));
  const two = new ShardedStore(nodes.map((node) => ({ id: node.id, weight: 1, node })), { vnodesPerNode: 160 });
  const crash = new Error("kill -9");
  expect(
    await rejectionOf(
      placeEmbeddedRows(two, dir, (id, file) => DurableKvNode.open(id, file), () => {
        throw crash;
      }),
    ),
  ).toBe(crash);
  await two.close();
  expect((JSON.parse(readFileSync(join(dir, "placement.json"), "utf8")) as { moving?: boolean }).moving).toBe(true);
  const back = await start(["--embedded-nodes", "4", "--vnodes", "160"]);
  try {
    expect(await statuses(back)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await back.close();
  }
  expect(ring()).toBe("160 vnodes: embedded-0:1,embedded-1:1,embedded-2:1,embedded-3:1");
});

test("a node file the placement record names is missing: the start is refused, naming it (it answered NOT_FOUND for its rows)", async () => {
  const q = await start(["--embedded-nodes", "4", "--vnodes", "160"]);
  await q.close();
  for (const x of ["", "-wal", "-shm"]) if (existsSync(join(dir, `embedded-2.sqlite${x}`))) renameSync(join(dir, `embedded-2.sqlite${x}`), join(dir, `aside${x}`));
  try {
    expect(() => checkNodeFiles(dir)).toThrow("embedded-2.sqlite missing, but placement.json records rows placed there");
    expect(String(await rejectionOf(start(["--embedded-nodes", "4", "--vnodes", "160"])))).toContain("embedded-2.sqlite missing");
  } finally {
    for (const x of ["", "-wal", "-shm"]) if (existsSync(join(dir, `aside${x}`))) renameSync(join(dir, `aside${x}`), join(dir, `embedded-2.sqlite${x}`));
  }
  const again = await start(["--embedded-nodes", "4", "--vnodes", "160"]);
  try {
    expect(await statuses(again)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await again.close();
  }
});

test("a second server on the same data directory is refused at start, naming the file; the first keeps serving", async () => {
  const first = await start(["--embedded-nodes", "2", "--vnodes", "40"]);
  try {
    // Both would have served rows from their own memory, each blind to the other's writes.
    expect(String(await rejectionOf(start(["--embedded-nodes", "2", "--vnodes", "40"])))).toContain(`${join(dir, "embedded-0.sqlite")} is in use by another process`);
    expect(await statuses(first)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await first.close();
  }
});
