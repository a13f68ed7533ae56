import { describe, expect, test } from "bun:test";
import { helpText, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  test("defaults, then environment, then flags", () => {
    expect(loadConfig([], {}).port).toBe(6566);
    expect(loadConfig([], { PORT: "7000" }).port).toBe(7000);
    expect(loadConfig(["--port", "7001"], { PORT: "7000" }).port).toBe(7001);
    expect(loadConfig(["--port=7002"], {}).port).toBe(7002);
  });

  test("durations and enumerations are parsed", () => {
    const c = loadConfig(["--max-future-skew", "90s", "--read-from", "replica"], { QUIVER_DURABILITY: "full" });
    expect([c.maxFutureSkewMs, c.readFrom, c.durability]).toEqual([90_000, "replica", "full"]);
    expect(loadConfig(["--max-future-skew", "120"], {}).maxFutureSkewMs).toBe(120_000);
  });

  test("records which settings were given explicitly", () => {
    const c = loadConfig(["--write-acks", "2"], { QUIVER_READ_FROM: "primary", QUIVER_VNODES: "" });
    expect([...c.explicit].sort()).toEqual(["readFrom", "writeAcks"]);
  });

  test("bad values and unknown flags name the setting", () => {
    expect(() => loadConfig(["--port", "99999"], {})).toThrow('--port: expected an integer from 0 to 65535, got "99999"');
    expect(() => loadConfig([], { QUIVER_READ_FROM: "any" })).toThrow('QUIVER_READ_FROM: expected one of primary, replica, nearest, got "any"');
    expect(() => loadConfig(["--nope", "1"], {})).toThrow("unknown flag --nope");
    expect(() => loadConfig(["--warmup-shapes", "json,xml"], {})).toThrow('--warmup-shapes: expected a comma-separated list of json, batch, msgpack, feast, grpc, got "xml"');
    expect(loadConfig(["--warmup-shapes", "json, grpc,json"], {}).warmupShapes).toEqual(["json", "grpc"]);
    expect(loadConfig([], {}).warmupShapes).toEqual(["json", "grpc"]);
    // A fraction where a number of ms may have one; not exponents or hex, which Number() would take.
    expect(loadConfig(["--overload-turn-ms", "0.5"], {}).overloadTurnMs).toBe(0.5);
    expect(loadConfig([], {}).youngGcMinHeapMb).toBe(128);
    expect(loadConfig(["--young-gc-min-heap-mb", "0"], {}).youngGcMinHeapMb).toBe(0);
    expect(() => loadConfig(["--young-gc-min-heap-mb", "-1"], {})).toThrow("--young-gc-min-heap-mb");
    expect(loadConfig([], {}).admissionLimitAllowance).toBe(4);
    expect(loadConfig(["--admission-limit-allowance", "1"], {}).admissionLimitAllowance).toBe(1);
    expect(() => loadConfig(["--admission-limit-allowance", "0"], {})).toThrow("--admission-limit-allowance");
    expect(loadConfig([], {}).cacheRefreshGatherMs).toBe(50);
    expect(loadConfig(["--cache-refresh-gather", "0"], {}).cacheRefreshGatherMs).toBe(0);
    expect(() => loadConfig(["--cache-refresh-gather", "soon"], {})).toThrow("--cache-refresh-gather");
    for (const bad of ["1e3", "0x1", "-1", ".5", "1."]) expect(() => loadConfig(["--overload-turn-ms", bad], {})).toThrow(`--overload-turn-ms: expected a number from 0 to 10000 (digits, optionally a fraction), got "${bad}"`);
    expect(() => loadConfig(["--port"], {})).toThrow("--port: a value is required");
    expect(() => loadConfig(["stray"], {})).toThrow('unexpected argument "stray"');
  });

  test("a blank or non-decimal integer, an empty host and a duration no timer can hold are refused (they became 0, every interface, 1 ms)", () => {
    expect(() => loadConfig([], { QUIVER_WRITE_ACKS: " " })).toThrow('QUIVER_WRITE_ACKS: expected an integer from 0 to 16, got " "');
    expect(() => loadConfig(["--port="], {})).toThrow('--port: expected an integer from 0 to 65535, got ""');
    for (const bad of ["0x1F90", "1e3", "+5", "5.0", "\n"]) expect(() => loadConfig(["--port", bad], {})).toThrow("--port: expected an integer");
    expect(loadConfig(["--grpc-port", "-1"], {}).grpcPort).toBe(-1);
    expect(() => loadConfig(["--host", ""], {})).toThrow("--host: expected a host name or IP address");
    expect(loadConfig(["--host", "::1"], {}).host).toBe("::1");
    expect(loadConfig(["--host", "0.0.0.0"], {}).host).toBe("0.0.0.0");
    expect(() => loadConfig(["--placement-check-interval", "30d"], {})).toThrow("--placement-check-interval: at most 24d");
    expect(loadConfig(["--placement-check-interval", "24d"], {}).placementCheckMs).toBe(24 * 86_400_000);
  });

  test("gRPC connection and stream bounds: defaults, 0 = never, bad values name the setting", () => {
    const d = loadConfig([], {});
    expect([d.grpcMaxConnectionAgeMs, d.grpcMaxConnectionAgeGraceMs, d.grpcMaxConnectionIdleMs, d.grpcStreamIdleMs]).toEqual([1_800_000, 120_000, 0, 300_000]);
    const c = loadConfig(["--grpc-max-connection-age", "0", "--grpc-max-connection-idle", "15m", "--grpc-stream-idle", "0"], { QUIVER_GRPC_MAX_CONNECTION_AGE_GRACE: "30s" });
    expect([c.grpcMaxConnectionAgeMs, c.grpcMaxConnectionAgeGraceMs, c.grpcMaxConnectionIdleMs, c.grpcStreamIdleMs]).toEqual([0, 30_000, 900_000, 0]);
    expect(() => loadConfig(["--grpc-max-connection-age", "soon"], {})).toThrow('--grpc-max-connection-age: expected a duration like "90s", "1h" or seconds, got "soon"');
    // grpc-js adds up to 10% to the age in a timer: 23d would pass what a timer holds and fire after 1 ms, every connection.
    expect(() => loadConfig(["--grpc-max-connection-age", "23d"], {})).toThrow("--grpc-max-connection-age: at most 22d");
    expect(loadConfig(["--grpc-max-connection-age", "22d"], {}).grpcMaxConnectionAgeMs).toBe(22 * 86_400_000);
    // As the message says: not 22.5d, though its 10% still fits a timer.
    expect(() => loadConfig(["--grpc-max-connection-age", "22.5d"], {})).toThrow("--grpc-max-connection-age: at most 22d");
    expect(() => loadConfig(["--grpc-max-connection-age-grace", "0"], {})).toThrow("--grpc-max-connection-age-grace: must be greater than zero");
    expect(() => loadConfig([], { QUIVER_GRPC_STREAM_IDLE: "-5" })).toThrow("QUIVER_GRPC_STREAM_IDLE");
    expect(() => loadConfig(["--grpc-max-connection-idle", "30d"], {})).toThrow("--grpc-max-connection-idle: at most 24d");
  });

  test("help lists every flag", () => {
    expect(helpText()).toContain("--topology");
    expect(helpText()).toContain("QUIVER_DATA_DIR");
  });
});
