import { describe, expect, test } from "bun:test";
import { AnomalyBuffer } from "./anomaly-buffer.ts";

describe("AnomalyBuffer", () => {
  test("repeats of one event within the fold window are one entry with a count; newest first", () => {
    let now = 1000;
    const b = new AnomalyBuffer({ clock: () => now });
    for (let i = 0; i < 500; i++) b.record("degraded_read", "s1", "storage_timeout");
    now += 1001;
    b.record("degraded_read", "s1", "storage_timeout");
    b.record("breaker", "s1/read", "open");
    const all = b.query();
    expect(all.map((a) => [a.kind, a.subject, a.reason, a.count])).toEqual([
      ["breaker", "s1/read", "open", 1],
      ["degraded_read", "s1", "storage_timeout", 1],
      ["degraded_read", "s1", "storage_timeout", 500],
    ]);
    expect(b.query({ kind: "breaker" }).length).toBe(1);
    expect(b.query({ since: 2000 }).length).toBe(2);
    expect(b.query({ limit: 1 })[0]!.kind).toBe("breaker");
    expect(b.countSince("degraded_read", 0)).toBe(501);
  });

  test("entries expire after the TTL and are counted as ttl evictions", () => {
    let now = 0;
    const b = new AnomalyBuffer({ ttlMs: 60_000, clock: () => now });
    b.record("shed", "", "overloaded");
    now = 30_000;
    b.record("failed_write", "s2", "shard_breaker_open");
    now = 61_000;
    b.cleanup();
    expect(b.length).toBe(1);
    expect(b.evictions).toEqual({ capacity: 0, ttl: 1 });
    now = 200_000;
    expect(b.query()).toEqual([]);
    expect(b.evictions.ttl).toBe(2);
  });

  test("stays bounded under a flood of distinct events (leak test)", () => {
    let now = 0;
    const b = new AnomalyBuffer({ capacity: 1000, clock: () => now });
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) {
      b.record("degraded_read", `shard-${i}`, "storage_timeout");
      now++;
    }
    expect(b.length).toBe(1000);
    expect(b.evictions.capacity).toBe(199_000);
    const newest = b.query({ limit: 1 })[0]!;
    expect(newest.subject).toBe("shard-199999");
    // The fold index holds only live entries.
    expect((b as unknown as { latest: Map<string, unknown> }).latest.size).toBe(1000);
    Bun.gc(true);
    const grownMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    console.log(JSON.stringify({ anomalyFlood: 200_000, kept: b.length, heapGrowthMb: Math.round(grownMb * 10) / 10 }));
    expect(grownMb).toBeLessThan(20);
  });
});
