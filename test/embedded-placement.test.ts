import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { driverStatuses } from "./support/driver-statuses.ts";

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

test("a second server on the same data directory is refused at start, naming the file; the first keeps serving", async () => {
  const first = await start(["--embedded-nodes", "2", "--vnodes", "40"]);
  try {
    // Both would have served rows from their own memory, each blind to the other's writes.
    await expect(start(["--embedded-nodes", "2", "--vnodes", "40"])).rejects.toThrow(`${join(dir, "embedded-0.sqlite")} is in use by another process`);
    expect(await statuses(first)).toEqual({ PRESENT: DRIVERS });
  } finally {
    await first.close();
  }
});
