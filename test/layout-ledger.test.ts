import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import type { QuiverError } from "../src/errors/index.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";
import { startRefused } from "./support/start-refused.ts";

/**
 * The layout ledger on real stores: a server started on a registry file whose
 * feature list no longer matches the rows its store keeps (reordered under the
 * same version) refuses to start, naming the view; appending is recorded, and
 * a pod on the older, shorter list still starts. Redis shards keep it in a hash
 * beside the rows (scans skip it), the durable store in its data directory.
 */
const dir = mkdtempSync(join(tmpdir(), "quiver-layout-ledger-"));
let example: string;
const CONV = "      - { name: conv_rate, type: float64, description: Share of offers the driver accepted and completed. }\n";
const ACC = "      - { name: acc_rate, type: float64, default: 0.5 }\n";
const LAST = '      - { name: rating_history, type: "float64[]" }\n';
const files = {
  original: join(dir, "original.yaml"),
  swapped: join(dir, "swapped.yaml"),
  appendedX: join(dir, "appended-x.yaml"),
  appendedY: join(dir, "appended-y.yaml"),
  live: join(dir, "live.yaml"),
};

beforeAll(async () => {
  example = await Bun.file("src/registry/example-registry.yaml").text();
  expect(example).toContain(CONV + ACC);
  writeFileSync(files.original, example);
  writeFileSync(files.swapped, example.replace(CONV + ACC, ACC + CONV));
  writeFileSync(files.appendedX, example.replace(LAST, `${LAST}      - { name: x_added, type: int64 }\n`));
  writeFileSync(files.appendedY, example.replace(LAST, `${LAST}      - { name: y_added, type: string }\n`));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const start = (storeArgs: string[], registry: string, more: string[] = []): Promise<Quiver> =>
  buildQuiver(loadConfig(["--registry", registry, "--demo-entities", "20", "--grpc-port", "-1", ...storeArgs, ...more], {}));

const refusal = (storeArgs: string[], registry: string): Promise<QuiverError> => startRefused(() => start(storeArgs, registry));

async function conv(q: Quiver): Promise<{ value: unknown; status: string }> {
  const res = await q.http.app.request("/v1/lookup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }),
  });
  const row = ((await res.json()) as { rows: { values: unknown[]; statuses: string[] }[] }).rows[0]!;
  return { value: row.values[0], status: row.statuses[0]! };
}

/** The same story on each store that keeps rows across restarts. */
function ledgerStory(storeArgs: () => string[], where: RegExp): void {
  test("a restart on a reordered feature list is refused, naming the view; appending is recorded; the older list still starts", async () => {
    const first = await start(storeArgs(), files.original);
    const stored = await conv(first);
    expect(stored.status).toBe("PRESENT");
    await first.close();

    const refused = await refusal(storeArgs(), files.swapped);
    expect(refused.code).toBe("incompatible_registry");
    expect(refused.issues).toHaveLength(1);
    expect(refused.issues[0]!.path).toBe("featureViews[0].features");
    expect(refused.issues[0]!.message).toMatch(where);
    expect(refused.issues[0]!.message).toContain("keeps rows of driver_hourly_stats@1 laid out as [conv_rate:float64, acc_rate:float64, avg_daily_trips:int64,");
    expect(refused.issues[0]!.message).toContain('this feature list has "acc_rate" (float64) where "conv_rate" (float64) is stored, feature 0');
    expect(refused.issues[0]!.message).toContain("bump the view's version");

    // Appended: recorded; then a pod on the original, shorter list starts too and reads the same rows.
    const appended = await start(storeArgs(), files.appendedX);
    expect(await conv(appended)).toEqual(stored);
    await appended.close();
    const older = await start(storeArgs(), files.original);
    expect(await conv(older)).toEqual(stored);
    await older.close();
    // But another feature appended where x_added is recorded is a conflict.
    const other = await refusal(storeArgs(), files.appendedY);
    expect(other.issues[0]!.message).toContain("rating_history:float64[], x_added:int64]");
  });

  test("a reload is checked against the ledger too: another pod's appended list conflicts with this one's", async () => {
    writeFileSync(files.live, example);
    const q = await start(storeArgs(), files.live);
    try {
      // The in-process check alone passes (appending); the ledger holds x_added where this appends y_added.
      writeFileSync(files.live, readFileSync(files.appendedY, "utf8"));
      const res = await q.http.app.request("/admin/registry/reload", { method: "POST" });
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("incompatible_registry");
      expect(error.message).toContain("x_added:int64]");
      expect(q.registry.current.views.get("driver_hourly_stats")!.features.length).toBe(10);
      // A version bump is a new, empty layout: accepted and recorded.
      writeFileSync(files.live, example.replace(CONV + ACC, ACC + CONV).replace(/(name: driver_hourly_stats[\s\S]*?version: )1/, "$12"));
      expect((await q.http.app.request("/admin/registry/reload", { method: "POST" })).status).toBe(200);
    } finally {
      await q.close();
    }
  });

  test("a reload that retypes a join key under the same version is refused: the stored rows keep answering", async () => {
    writeFileSync(files.live, example);
    const q = await start(storeArgs(), files.live);
    try {
      const stored = await conv(q);
      expect(stored.status).toBe("PRESENT");
      // Every row's storage key spells driver_id=i<id>: taken, this reload answered 200 and then NOT_FOUND for all 20 drivers.
      writeFileSync(files.live, example.replaceAll("{ name: driver_id, type: int64 }", "{ name: driver_id, type: string }"));
      const res = await q.http.app.request("/admin/registry/reload", { method: "POST" });
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { error: { code: string; message: string; path: string } }).error;
      expect(error.code).toBe("incompatible_registry");
      expect(error.path).toBe("featureViews[0].entities");
      expect(error.message).toMatch(where);
      expect(error.message).toContain("keeps rows of driver_hourly_stats@1 under the join keys [driver_id:int64], and this view's join keys are [driver_id:string]");
      expect(q.registry.current.joinKeys.get("driver_id")!.type).toBe("int64");
      expect(await conv(q)).toEqual(stored);
    } finally {
      await q.close();
    }
  });
}

describe("on Redis shards", () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await startRedis();
    writeFileSync(join(dir, "topology.yaml"), `shards:\n  - name: s1\n    primary: ${redis.address}\n`);
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });
  ledgerStory(() => ["--topology", join(dir, "topology.yaml")], /the store \(shard s1 at 127\.0\.0\.1:\d+\)/);
});

describe("on the durable embedded store", () => {
  ledgerStory(() => ["--data-dir", join(dir, "data")], /the store \(.*layouts\.json\)/);
});
