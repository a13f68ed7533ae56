import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import Redis from "ioredis";
import type { Discovery, Layout } from "../src/shard/discovery.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { SentinelDiscovery } from "../src/shard/sentinel-discovery.ts";
import { eventually } from "./stream-source-contract.ts";
import { type RedisProcess, type ReplicationGroup, startRedis, startReplicationGroup } from "./support/redis-process.ts";

/**
 * A stale Sentinel that names a replica as the shard's primary (an audit's
 * reproduction: SENTINEL REMOVE, then SENTINEL MONITOR of the replica, on the
 * first Sentinel). The other two still name the real primary. Until 12-07 the
 * replica set asked the first Sentinel that answered and kept asking it: every
 * write failed READONLY, forever. Real redis-server and Sentinel processes.
 */

let group: ReplicationGroup;
const admin: Redis[] = [];

const client = (p: RedisProcess): Redis => {
  const c = new Redis({ host: p.host, port: p.port, maxRetriesPerRequest: 1 });
  admin.push(c);
  return c;
};

/** Makes a Sentinel watch the shard's master name at `address` instead (as an operator's mistake would). */
async function monitor(sentinel: RedisProcess, address: RedisProcess): Promise<void> {
  const c = client(sentinel);
  await c.call("SENTINEL", "REMOVE", group.masterName);
  await c.call("SENTINEL", "MONITOR", group.masterName, address.host, String(address.port), "2");
}

const named = async (sentinel: RedisProcess): Promise<string> => ((await client(sentinel).call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.masterName)) as string[]).join(":");

/** A Sentinel discovery that counts its answers, so a test can wait for discovery polls rather than for time. */
class CountingDiscovery extends SentinelDiscovery {
  resolved = 0;
  override async resolve(): Promise<Layout> {
    try {
      return await super.resolve();
    } finally {
      this.resolved++;
    }
  }
}

const connect = (id: string, discovery: Discovery): Promise<ReplicaSet> =>
  ReplicaSet.connect({ id, discovery, writeAcks: 0, probeIntervalMs: 100, discoveryIntervalMs: 100, attemptTimeoutMs: 1000, failoverWindowMs: 1000 });

beforeAll(async () => {
  group = await startReplicationGroup({ replicas: 1, sentinels: 3 });
  await monitor(group.sentinels[0]!, group.replicas[0]!);
  expect(await named(group.sentinels[0]!)).toBe(group.replicas[0]!.address);
  expect(await named(group.sentinels[1]!)).toBe(group.primary.address);
  expect(await named(group.sentinels[2]!)).toBe(group.primary.address);
}, 60_000);

afterAll(async () => {
  for (const c of admin) c.disconnect();
  await group?.stop();
});

describe("a stale Sentinel names the replica as the shard's primary", () => {
  test("Sentinels that refuse SENTINEL MASTER (an ACL) still name the primary: ranked by votes, without their epoch", async () => {
    // The epoch query failing made every Sentinel's whole answer fail: the shard could not connect at all.
    for (const sentinel of group.sentinels) await client(sentinel).call("ACL", "SETUSER", "default", "-sentinel|master");
    const logged = spyOn(console, "error").mockImplementation(() => {});
    try {
      const set = await connect("no-epoch", new SentinelDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName, timeoutMs: 5000 }));
      try {
        expect(set.primaryAddress).toBe(group.primary.address);
        expect((await set.putMany([{ key: "sd@1/k=acl", row: { ts: 10, values: [1] } }])).written).toBe(1);
        expect(logged.mock.calls.map((c) => String(c[0])).filter((m) => m.includes("SENTINEL MASTER failed"))).toHaveLength(3);
      } finally {
        await set.close();
      }
    } finally {
      logged.mockRestore();
      for (const sentinel of group.sentinels) await client(sentinel).call("ACL", "SETUSER", "default", "+sentinel|master");
    }
  }, 60_000);

  test("with 2 of 3 Sentinels naming the real primary, writes go there; the disagreement is logged once and counted", async () => {
    // A generous bound per Sentinel: one answer lost to a slow machine would change the disagreement, and log it again.
    const discovery = new CountingDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName, timeoutMs: 5000 });
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connect("stale-one-of-three", discovery);
    try {
      expect(set.primaryAddress).toBe(group.primary.address);
      for (let i = 0; i < 5; i++) expect((await set.putMany([{ key: `sd@1/k=i${i}`, row: { ts: 10 + i, values: [i] } }])).written).toBe(1);
      expect(await client(group.primary).exists("sd@1/k=i4")).toBe(1);
      // Every discovery poll still sees the disagreement: it is logged and counted once, not once a poll.
      const polls = discovery.resolved;
      await eventually("five more discovery polls", () => discovery.resolved >= polls + 5, 15_000);
      const notes = logged.mock.calls.map((c) => String(c[0])).filter((m) => m.includes("stale-one-of-three"));
      expect(notes).toHaveLength(1);
      expect(notes[0]).toContain(`the Sentinels disagree on the primary: ${group.primary.address} (named by ${group.sentinels[1]!.address}, ${group.sentinels[2]!.address})`);
      expect(notes[0]).toContain(`${group.replicas[0]!.address} (named by ${group.sentinels[0]!.address}); following ${group.primary.address}`);
      expect(set.stats().discoveryConflicts).toBe(1);
      expect(set.primaryAddress).toBe(group.primary.address);
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 60_000);

  test("with one Sentinel for and one against, ROLE decides: the address that says it is a replica is never the primary", async () => {
    // The stale Sentinel first: asked in order, it would win a tie.
    const discovery = new SentinelDiscovery({ sentinels: [group.sentinels[0]!.address, group.sentinels[1]!.address], masterName: group.masterName });
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connect("stale-one-of-two", discovery);
    try {
      expect(set.primaryAddress).toBe(group.primary.address);
      expect((await set.putMany([{ key: "sd@1/k=tie", row: { ts: 10, values: [1] } }])).written).toBe(1);
      expect(await client(group.primary).exists("sd@1/k=tie")).toBe(1);
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 60_000);

  test("with only the stale Sentinel: no primary rather than the replica, and its answer followed once it names the primary", async () => {
    const discovery = new SentinelDiscovery({ sentinels: [group.sentinels[0]!.address], masterName: group.masterName });
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connect("stale-alone", discovery);
    try {
      expect(set.primaryAddress).toBeUndefined();
      expect((await set.health()).detail?.["writable"]).toBe(false);
      const refused = await set.putMany([{ key: "sd@1/k=alone", row: { ts: 10, values: [1] } }]).catch((e: unknown) => e as Error);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toContain("no primary known");
      expect(logged.mock.calls.map((c) => String(c[0])).filter((m) => m.includes("stale-alone"))[0]).toContain(`the Sentinels name ${group.replicas[0]!.address} (named by ${group.sentinels[0]!.address}), which says it is a replica; none says it is a master`);
      // The operator puts the Sentinel right: the set follows it (one Sentinel is still used, its answer confirmed).
      await monitor(group.sentinels[0]!, group.primary);
      await eventually("the set to follow the Sentinel", () => set.primaryAddress === group.primary.address, 15_000);
      expect((await set.putMany([{ key: "sd@1/k=alone", row: { ts: 10, values: [1] } }])).written).toBe(1);
      expect(await client(group.primary).exists("sd@1/k=alone")).toBe(1);
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 60_000);

  test("a majority naming an address that is down, at the same configuration epoch, is followed rather than the minority's master: writes wait", async () => {
    // Two of three name a server that cannot be reached, the third a live master, all at one epoch. That cannot be
    // told from an old master cut off with one Sentinel while the others promoted a replica: writing to the minority's
    // master would lose those writes (a review of e2fd0d4, which did). A Sentinel that heard a failover the others
    // missed has the newer epoch, and wins (rankLayouts, test/membership-refresh.test.ts).
    const gone = await startRedis();
    await gone.stop();
    await monitor(group.sentinels[1]!, gone);
    await monitor(group.sentinels[2]!, gone);
    expect(await named(group.sentinels[0]!)).toBe(group.primary.address);
    const discovery = new SentinelDiscovery({ sentinels: group.sentinels.map((s) => s.address), masterName: group.masterName, timeoutMs: 5000 });
    const logged = spyOn(console, "error").mockImplementation(() => {});
    const set = await connect("stale-majority", discovery);
    try {
      expect(set.primaryAddress).toBe(gone.address);
      const refused = await set.putMany([{ key: "sd@1/k=majority", row: { ts: 10, values: [1] } }]).catch((e: unknown) => e as Error);
      expect(refused).toBeInstanceOf(Error);
      expect(await client(group.primary).exists("sd@1/k=majority")).toBe(0);
    } finally {
      logged.mockRestore();
      await set.close();
    }
  }, 60_000);
});
