import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import type { KvEntry, PutOutcome, ReadContext, ReadSlot } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { ArenaKvNode } from "../kv/arena-node.ts";
import { ShardBreakerOpenError, ShardUnavailableError, StorageTimeoutError } from "../kv/storage-errors.ts";
import { ShardedStore } from "../store/sharded-store.ts";
import { guardShard } from "./guard-shard.ts";
import type { ShardNode } from "./resilient-shard.ts";
import type { BreakerState, ResilienceObserver } from "./shard-policies.ts";

/**
 * A shard stand-in whose behaviour the test switches: healthy (answers from an
 * in-memory node), failing (rejects with a retryable shard error) or hung
 * (never answers). Fault tests with real redis-server processes live in test/.
 */
class SwitchableShard implements ShardNode {
  readonly readsNow = "never";
  readonly getManyNow = () => undefined;
  mode: "ok" | "fail" | "hang" = "ok";
  calls = 0;
  private readonly store: ArenaKvNode;
  constructor(readonly id: string) {
    this.store = new ArenaKvNode(id);
  }
  private gate<T>(work: () => Promise<T>): Promise<T> {
    this.calls++;
    if (this.mode === "fail") return Promise.reject(new ShardUnavailableError(this.id, "test: failing"));
    if (this.mode === "hang") return new Promise<T>(() => {});
    return work();
  }
  getMany(keys: readonly string[], _ctx?: ReadContext): Promise<ReadSlot[]> {
    return this.gate(() => this.store.getMany(keys));
  }
  putMany(entries: readonly KvEntry[]): Promise<PutOutcome> {
    return this.gate(() => this.store.putMany(entries));
  }
  deleteMany(keys: readonly string[]) {
    return this.gate(() => this.store.deleteMany(keys));
  }
  getManyPrimary(keys: readonly string[]) {
    return this.getMany(keys);
  }
  deleteIfNotNewer() {
    return Promise.resolve([]);
  }
  size() {
    return Promise.resolve(0);
  }
  scan(cursor: string, count: number, prefix?: string) {
    return this.store.scan(cursor, count, prefix);
  }
  health() {
    return this.store.health();
  }
  close() {
    return this.store.close();
  }
}

function recorder() {
  const events: string[] = [];
  const observer: ResilienceObserver = {
    breakerChanged: (shard, op, state: BreakerState) => events.push(`${shard}/${op}:${state}`),
    retried: (shard, op) => events.push(`${shard}/${op}:retry`),
    failed: (shard, op, reason) => events.push(`${shard}/${op}:failed:${reason}`),
  };
  return { events, observer };
}

const FAST = { requestTimeoutMs: 5000, breakerFailures: 5, breakerWindowMs: 10_000, breakerOpenMs: 30_000, breakerTrials: 3, readRetryDelayMs: 1, writeBackoffMs: 1 };

afterEach(() => {
  setSystemTime();
});

describe("ResilientShard", () => {
  test("a failing shard's read breaker opens after 5 failed calls within 10 s; open, it fails at once without I/O", async () => {
    let now = 1_000_000;
    setSystemTime(new Date(now));
    const inner = new SwitchableShard("s1");
    const { events, observer } = recorder();
    const shard = guardShard(inner, { ...FAST, readRetries: 2 }, observer, () => now);
    inner.mode = "fail";
    for (let i = 0; i < 5; i++) {
      await expect(shard.getMany(["v@1/k=1"])).rejects.toBeInstanceOf(ShardUnavailableError);
      now += 100;
      setSystemTime(new Date(now));
    }
    expect(inner.calls).toBe(15); // each call: the first attempt and 2 retries
    expect(shard.guardState().read).toBe("open");
    expect(events).toContain("s1/read:open");
    const before = inner.calls;
    const err = await shard.getMany(["v@1/k=1"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShardBreakerOpenError);
    expect((err as ShardBreakerOpenError).retryAfterSeconds).toBe(30);
    expect(inner.calls).toBe(before);
    expect(events).toContain("s1/read:failed:shard_breaker_open");
    // Writes have their own breaker: still closed.
    expect(shard.guardState().write).toBe("closed");
  });

  test("failures spread wider than the window do not open the breaker", async () => {
    let now = 2_000_000;
    const inner = new SwitchableShard("s1");
    const shard = guardShard(inner, { ...FAST, readRetries: 0 }, recorder().observer, () => now);
    inner.mode = "fail";
    for (let i = 0; i < 12; i++) {
      await shard.getMany(["v@1/k=1"]).catch(() => {});
      now += 2600; // 5 failures span 10.4 s
    }
    expect(shard.guardState().read).toBe("closed");
  });

  test("after the open period a trial goes through; 3 successes close it, a failure on probation reopens it", async () => {
    let now = 3_000_000;
    setSystemTime(new Date(now));
    const inner = new SwitchableShard("s1");
    const { events, observer } = recorder();
    const shard = guardShard(inner, { ...FAST, readRetries: 0 }, observer, () => now);
    inner.mode = "fail";
    for (let i = 0; i < 5; i++) await shard.getMany(["v@1/k=1"]).catch(() => {});
    expect(shard.guardState().read).toBe("open");
    now += 30_001;
    setSystemTime(new Date(now));
    inner.mode = "ok";
    expect(await shard.getMany(["v@1/k=1"])).toEqual([undefined]);
    expect(events.filter((e) => e.startsWith("s1/read:") && !e.includes("failed"))).toEqual(["s1/read:open", "s1/read:half_open", "s1/read:closed"]);
    expect(await shard.getMany(["v@1/k=1"])).toEqual([undefined]);
    // Second trial fails: on probation, one failure reopens at once.
    inner.mode = "fail";
    await shard.getMany(["v@1/k=1"]).catch(() => {});
    expect(shard.guardState().read).toBe("open");
    // Next time, three successes end the probation; then it takes 5 failures again.
    now += 30_001;
    setSystemTime(new Date(now));
    inner.mode = "ok";
    for (let i = 0; i < 3; i++) await shard.getMany(["v@1/k=1"]);
    inner.mode = "fail";
    await shard.getMany(["v@1/k=1"]).catch(() => {});
    expect(shard.guardState().read).toBe("closed");
  });

  test("a hung shard's read fails at the request deadline with a timeout, never later", async () => {
    const inner = new SwitchableShard("s1");
    const shard = guardShard(inner, { ...FAST }, recorder().observer);
    inner.mode = "hang";
    const started = performance.now();
    const err = await shard.getMany(["v@1/k=1"], { deadline: started + 30 }).catch((e: unknown) => e);
    const took = performance.now() - started;
    console.log(JSON.stringify({ hungReadAnsweredAfterMs: Math.round(took * 10) / 10, budgetMs: 30 }));
    expect(err).toBeInstanceOf(StorageTimeoutError);
    expect(took).toBeGreaterThanOrEqual(29);
    expect(took).toBeLessThan(30 + 500); // generous: the machine is shared
  });

  test("the ring turns one shard's failure into UNAVAILABLE for that shard's keys only and names it in degraded", async () => {
    const a = new SwitchableShard("a");
    const b = new SwitchableShard("b");
    const ga = guardShard(a, FAST, recorder().observer);
    const gb = guardShard(b, FAST, recorder().observer);
    const store = new ShardedStore([
      { id: "a", weight: 1, node: ga },
      { id: "b", weight: 1, node: gb },
    ]);
    const keys = Array.from({ length: 200 }, (_, i) => `v@1/k=${i}`);
    await store.putMany(keys.map((key, i) => ({ key, row: { ts: 1, values: [i] } })));
    b.mode = "fail";
    const ctx = { degraded: [] as string[], deadline: performance.now() + 1000 };
    const slots = await store.getMany(keys, ctx);
    expect(ctx.degraded).toEqual(["b"]);
    keys.forEach((key, i) => {
      const owner = store.nodeFor(key).id;
      if (owner === "b") expect(slots[i]).toBe(UNAVAILABLE);
      else expect(slots[i]).toEqual({ ts: 1, values: [i] });
    });
  });

  test("an open write breaker fails pushes at once with a retry-after; reads stay served", async () => {
    let now = 4_000_000;
    setSystemTime(new Date(now));
    const inner = new SwitchableShard("s1");
    const shard = guardShard(inner, { ...FAST, writeRetries: 0, failoverWindowMs: 0 }, recorder().observer, () => now);
    await shard.putMany([{ key: "v@1/k=1", row: { ts: 1, values: [1] } }]);
    inner.mode = "fail";
    for (let i = 0; i < 5; i++) await shard.putMany([{ key: "v@1/k=1", row: { ts: 2, values: [2] } }]).catch(() => {});
    expect(shard.guardState().write).toBe("open");
    now += 10_000;
    setSystemTime(new Date(now));
    const err = await shard.putMany([{ key: "v@1/k=1", row: { ts: 3, values: [3] } }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShardBreakerOpenError);
    expect((err as ShardBreakerOpenError).retryAfterSeconds).toBe(20);
    expect((err as ShardBreakerOpenError).kind).toBe("unavailable");
    inner.mode = "ok";
    expect(await shard.getMany(["v@1/k=1"])).toEqual([{ ts: 1, values: [1] }]);
  });
});
