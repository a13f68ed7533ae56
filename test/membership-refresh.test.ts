import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import type { Discovery, Layout } from "../src/shard/discovery.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { rankLayouts } from "../src/shard/sentinel-discovery.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

/**
 * A change announced while a discovery query is under way (Sentinel's
 * +switch-master arriving mid-query) is followed by one more query: it was
 * merged into the running one, which may have read the Sentinels before the
 * change, and the shard followed the old primary until the next poll.
 */
class GatedDiscovery implements Discovery {
  readonly kind: "static" | "sentinel" = "static";
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

/** A discovery answering a fixed ranked layout (as rankLayouts would), for choosing among Sentinels' answers. */
class FixedSentinels extends GatedDiscovery {
  override readonly kind = "sentinel";
}

test("rankLayouts: the newest configuration epoch first, then the most named, then the configured order", () => {
  const at = (primary: string, epoch: number) => ({ primary, replicas: [], epoch });
  const ranked = rankLayouts([
    { sentinel: "s1", layout: at("old:1", 3) },
    { sentinel: "s2", layout: at("old:1", 3) },
    { sentinel: "s3", layout: at("new:1", 4) },
  ]);
  expect([ranked.primary, ...(ranked.rivals ?? []).map((r) => r.primary)]).toEqual(["new:1", "old:1"]);
  const tie = rankLayouts([
    { sentinel: "s1", layout: at("a:1", 2) },
    { sentinel: "s2", layout: at("b:1", 2) },
    { sentinel: "s3", layout: at("b:1", 2) },
  ]);
  expect([tie.primary, tie.namedBy, tie.rivals?.[0]?.primary]).toEqual(["b:1", ["s2", "s3"], "a:1"]);
  expect(rankLayouts([{ sentinel: "s1", layout: at("x:1", 0) }, { sentinel: "s2", layout: at("y:1", 0) }]).primary).toBe("x:1");
});

describe("choosing among the Sentinels' answers (real redis-servers for ROLE)", () => {
  const blackhole = "127.0.0.1:1"; // refuses connections: an address that cannot be asked
  const connectWith = (layout: Layout) => {
    const discovery = new FixedSentinels(layout);
    return ReplicaSet.connect({ id: "ranked", discovery, writeAcks: 0, probeIntervalMs: 100, discoveryIntervalMs: 3_600_000, attemptTimeoutMs: 500, failoverWindowMs: 500, connectTimeoutMs: 1000 });
  };

  test("a better-ranked primary that cannot be reached is followed over a lower-ranked master: no write lands on an old master", async () => {
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connectWith({ primary: blackhole, replicas: [], namedBy: ["s1", "s2"], epoch: 5, rivals: [{ primary: a.address, replicas: [], namedBy: ["s3"], epoch: 4 }] });
    try {
      expect(set.primaryAddress).toBe(blackhole);
      expect(await set.putMany([{ key: "rk@1/k=1", row: { ts: 1, values: [1] } }]).then(() => "written", () => "refused")).toBe("refused");
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 30_000);

  test("among equally ranked answers a master is preferred to one that cannot be asked", async () => {
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connectWith({ primary: blackhole, replicas: [], namedBy: ["s1"], epoch: 5, rivals: [{ primary: b.address, replicas: [], namedBy: ["s2"], epoch: 5 }] });
    try {
      expect(set.primaryAddress).toBe(b.address);
      expect((await set.putMany([{ key: "rk@1/k=2", row: { ts: 1, values: [2] } }])).written).toBe(1);
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 30_000);
});
