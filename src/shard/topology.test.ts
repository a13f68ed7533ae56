import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QuiverError } from "../errors/index.ts";
import { loadTopology, parseTopology } from "./topology.ts";

function errorOf(data: unknown): QuiverError {
  try {
    parseTopology(data);
  } catch (error) {
    return error as QuiverError;
  }
  throw new Error("expected the topology to be rejected");
}

const paths = (data: unknown): string[] => errorOf(data).issues.map((i) => `${i.path}: ${i.message}`);

describe("topology files", () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-topology-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("parses Sentinel and direct shards with weights and defaults", () => {
    const topology = parseTopology({
      defaults: { readFrom: "replica", writeAcks: 2 },
      shards: [
        { name: "a", sentinels: ["127.0.0.1:26379", "[::1]:26380"], masterName: "mymaster" },
        { name: "b", weight: 2.5, primary: "10.0.0.2:6379", replicas: ["10.0.0.3:6379"], writeAcks: 0 },
        { name: "c", sentinels: ["s1.internal:26379"] },
      ],
    });
    expect(topology.defaults).toEqual({ readFrom: "replica", writeAcks: 2 });
    expect(topology.shards).toEqual([
      { kind: "sentinel", name: "a", weight: 1, tuning: {}, masterName: "mymaster", sentinels: ["127.0.0.1:26379", "[::1]:26380"] },
      { kind: "direct", name: "b", weight: 2.5, tuning: { writeAcks: 0 }, primary: "10.0.0.2:6379", replicas: ["10.0.0.3:6379"] },
      { kind: "sentinel", name: "c", weight: 1, tuning: {}, masterName: "c", sentinels: ["s1.internal:26379"] },
    ]);
  });

  test("names the path of a malformed address", () => {
    const error = errorOf({ shards: [{ name: "a", primary: "127.0.0.1:7000" }, { name: "b", primary: "localhost" }] });
    expect(error.code).toBe("invalid_topology");
    expect(error.message).toBe('shards[1].primary: expected host:port, got "localhost"');
    expect(paths({ shards: [{ name: "a", sentinels: ["127.0.0.1:26379", "x:99999"] }] })).toEqual([
      'shards[0].sentinels[1]: expected host:port, got "x:99999"',
    ]);
  });

  test("reports every problem at once", () => {
    expect(
      paths({
        shards: [
          { name: "a", primary: "h:1", sentinels: ["h:2"] },
          { name: "b" },
          { name: "a", primary: "h:3", weight: 0, replicas: ["h:3"], replica: ["h:4"] },
          { name: "bad name", primary: "h:5", readFrom: "closest" },
        ],
        extra: true,
      }),
    ).toEqual([
      "extra: unknown field (expected shards, defaults, cache)",
      "shards[0]: give either `sentinels` (+ `masterName`) or `primary` (+ `replicas`)",
      "shards[1]: give either `sentinels` (+ `masterName`) or `primary` (+ `replicas`)",
      "shards[2].replica: unknown field",
      "shards[2].weight: expected a positive number, got 0",
      "shards[2].replicas: the primary h:3 is listed as a replica",
      'shards[3].name: expected a name of letters, digits, "_", "." or "-", got "bad name"',
      'shards[3].readFrom: expected one of primary, replica, nearest, got "closest"',
    ]);
  });

  test("rejects duplicate shard names, an empty list and bad defaults", () => {
    expect(paths({ shards: [{ name: "a", primary: "h:1" }, { name: "a", primary: "h:2" }] })).toEqual(['shards[1].name: duplicate shard name "a"']);
    expect(paths({ shards: [] })).toEqual(["shards: expected a non-empty list of shards"]);
    expect(paths({ defaults: { writeAcks: -1, retries: 3 }, shards: [{ name: "a", primary: "h:1" }] })).toEqual([
      "defaults.writeAcks: expected an integer >= 0, got -1",
      "defaults.retries: unknown field (expected one of readFrom, writeAcks, ackTimeoutMs, attemptTimeoutMs, failoverWindowMs, probeIntervalMs, requestTimeoutMs, readAttemptTimeoutMs, readAttemptMaxMs, readRetries, readRetryDelayMs, writeRetries, writeBackoffMs, writeTimeoutMs, breakerFailures, breakerWindowMs, breakerOpenMs, breakerRetrialMs, breakerTrials, bulkheadConcurrency, bulkheadQueue)",
    ]);
    expect(paths("shards: []")).toEqual(["(root): expected a mapping with a `shards` list"]);
  });

  test("loads YAML and JSON files; errors name the file", async () => {
    const yamlPath = join(dir, "t.yaml");
    writeFileSync(yamlPath, "shards:\n  - name: s1\n    sentinels: [127.0.0.1:26379]\n    masterName: s1\n");
    expect((await loadTopology(yamlPath)).shards[0]).toMatchObject({ kind: "sentinel", name: "s1" });
    const jsonPath = join(dir, "t.json");
    writeFileSync(jsonPath, JSON.stringify({ shards: [{ name: "s1", primary: "127.0.0.1:7000" }] }));
    expect((await loadTopology(jsonPath)).shards[0]).toMatchObject({ kind: "direct", primary: "127.0.0.1:7000" });
    const badPath = join(dir, "bad.yaml");
    writeFileSync(badPath, "shards:\n  - name: s1\n    primary: nowhere\n");
    await expect(loadTopology(badPath)).rejects.toThrow(`${badPath}: shards[0].primary: expected host:port, got "nowhere"`);
    writeFileSync(badPath, "shards: [\n");
    await expect(loadTopology(badPath)).rejects.toThrow("not valid YAML/JSON");
    await expect(loadTopology(join(dir, "missing.yaml"))).rejects.toThrow("topology file not found");
    // A directory in the file's place: it was EISDIR thrown as is, so POST /admin/topology/reload answered 500 "internal error".
    const unreadable = (await loadTopology(dir).catch((e: unknown) => e)) as QuiverError;
    expect([unreadable.kind, unreadable.code, unreadable.path]).toEqual(["invalid_argument", "invalid_topology", "(file)"]);
    expect(unreadable.message).toContain(`topology file not readable: ${dir}: EISDIR`);
  });

  test("the committed example topology is valid", async () => {
    const topology = await loadTopology(new URL("../../shards/example.yaml", import.meta.url).pathname);
    expect(topology.shards.length).toBeGreaterThan(0);
  });
});
