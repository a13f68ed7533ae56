import { describe, expect, test } from "bun:test";
import { loadConfig } from "./config.ts";
import { inapplicableSettings } from "./inapplicable.ts";

const named = (argv: string[], env: Record<string, string> = {}) => inapplicableSettings(loadConfig(argv, env)).map((m) => m.slice(0, m.indexOf(" /")));

describe("inapplicableSettings", () => {
  test("defaults and settings that apply are not named", () => {
    expect(named([])).toEqual([]);
    expect(named(["--topology", "t.yaml", "--read-from", "replica", "--write-acks", "0", "--data-dir", "d", "--vector-snapshot-interval", "1m"])).toEqual([]);
    expect(named(["--data-dir", "d", "--durability", "full", "--embedded-nodes", "2"])).toEqual([]);
    expect(named(["--topology", "t.yaml", "--cache-l2-master", "m"])).toEqual([]); // the file may name the Sentinels
    expect(named(["--max-concurrency", "0", "--admission-limit-allowance", "2", "--warmup-lookups", "10", "--warmup-shapes", "json"])).toEqual([]);
    // The admission queue reads --overload-interval-ms with shedding off; a manifest's warm-up shapes with the warm-up off are harmless.
    expect(named(["--overload-delay-ms", "0", "--overload-interval-ms", "200"])).toEqual([]);
    expect(named(["--warmup-lookups", "0"], { QUIVER_WARMUP_SHAPES: "json,grpc" })).toEqual([]);
  });

  test("a setting that would do nothing with the others is named, given by flag or environment", () => {
    expect(named(["--read-from", "replica"], { QUIVER_MIGRATE_ON_START: "on" })).toEqual(["--migrate-on-start", "--read-from"]);
    expect(named(["--topology", "t.yaml", "--embedded-nodes", "2", "--durability", "full", "--data-dir", "d"])).toEqual(["--embedded-nodes", "--durability"]);
    expect(named(["--durability", "full", "--vector-snapshot-interval", "1m"])).toEqual(["--durability", "--vector-snapshot-interval"]);
    expect(named(["--grpc-port", "-1", "--grpc-keepalive", "10s"])).toEqual(["--grpc-keepalive"]);
    expect(named(["--grpc-port", "-1", "--grpc-max-connection-age", "1h", "--grpc-stream-idle", "1m"])).toEqual(["--grpc-max-connection-age", "--grpc-stream-idle"]);
    expect(named(["--grpc-max-connection-age", "0"], { QUIVER_GRPC_MAX_CONNECTION_AGE_GRACE: "1m" })).toEqual(["--grpc-max-connection-age-grace"]);
    expect(named(["--grpc-max-connection-age", "1h", "--grpc-max-connection-age-grace", "1m", "--grpc-max-connection-idle", "10m"])).toEqual([]);
    expect(named(["--cache-l2-master", "m"])).toEqual(["--cache-l2-master"]);
    expect(named(["--young-gc-interval-ms", "0", "--young-gc-min-requests", "10"])).toEqual(["--young-gc-min-requests"]);
    expect(named(["--max-concurrency", "100", "--admission-limit-allowance", "2"])).toEqual(["--admission-limit-allowance"]);
    expect(named(["--overload-delay-ms", "0", "--overload-turn-ms", "1"])).toEqual(["--overload-turn-ms"]);
    expect(named(["--answer-batch", "1", "--answer-hold-ms", "0.5"])).toEqual(["--answer-hold-ms"]);
  });

  test("an empty environment variable is not a setting given", () => {
    expect(named([], { QUIVER_READ_FROM: "" })).toEqual([]);
  });
});
