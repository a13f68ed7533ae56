import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Discovery, Layout } from "../src/shard/discovery.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A change announced while a discovery query is under way (Sentinel's
 * +switch-master arriving mid-query) is followed by one more query: it was
 * merged into the running one, which may have read the Sentinels before the
 * change, and the shard followed the old primary until the next poll.
 */
class GatedDiscovery implements Discovery {
  readonly kind = "static";
  layout: Layout;
  gate: Promise<void> | undefined;
  private changed: (() => void) | undefined;
  constructor(layout: Layout) {
    this.layout = layout;
  }
  async resolve(): Promise<Layout> {
    const read = this.layout; // what the sources said when asked
    if (this.gate) await this.gate;
    return read;
  }
  watch(onChange: () => void): void {
    this.changed = onChange;
  }
  announce(): void {
    this.changed?.();
  }
  failoverUnderWay(): boolean {
    return false;
  }
  describe(): Record<string, unknown> {
    return { kind: this.kind };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

let a: RedisProcess;
let b: RedisProcess;
beforeAll(async () => {
  [a, b] = await Promise.all([startRedis(), startRedis()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

test("a change announced during a discovery query gets a query of its own after it", async () => {
  const discovery = new GatedDiscovery({ primary: a.address, replicas: [] });
  const set = await ReplicaSet.connect({ id: "gated", discovery, writeAcks: 0, probeIntervalMs: 100 });
  try {
    expect(set.primaryAddress).toBe(a.address);
    let open = () => {};
    discovery.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    discovery.announce(); // a query starts and reads the old layout
    discovery.layout = { primary: b.address, replicas: [] };
    discovery.announce(); // the change, announced while that query runs
    discovery.gate = undefined;
    open();
    await eventually("the set to follow the change", () => set.primaryAddress === b.address, 10_000);
  } finally {
    await set.close();
  }
}, 30_000);
