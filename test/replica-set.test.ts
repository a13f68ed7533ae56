import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, createServer, type Socket } from "node:net";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { CallerDeadlineError, sentNothing, StorageTimeoutError } from "../src/kv/storage-errors.ts";
import { StaticDiscovery } from "../src/shard/discovery.ts";
import { guardShard, IGNORE_OBSERVER, type ResilientShard } from "../src/resilience/shards.ts";
import { ReplicaSet } from "../src/shard/replica-set.ts";
import { runKvContract } from "./kv-contract.ts";
import { type RedisProcess, type ReplicationGroup, startRedis, startReplicationGroup } from "./support/redis-process.ts";

runKvContract("ReplicaSet behind its shard policies (1 primary + 1 replica, writeAcks 1)", async () => {
  const group = await startReplicationGroup({ replicas: 1 });
  // Generous bounds: the contract is about answers, and the test machine is shared.
  const set = await ReplicaSet.connect({
    id: "contract",
    discovery: new StaticDiscovery({ primary: group.primary.address, replicas: [group.replicas[0]!.address] }),
    readAttemptTimeoutMs: 1000,
    requestTimeoutMs: 5000,
  });
  const node = guardShard(set, set.tuning, IGNORE_OBSERVER);
  return {
    node,
    async dispose() {
      await node.close();
      await group.stop();
    },
  };
});

describe("ReplicaSet with direct addresses", () => {
  let group: ReplicationGroup;
  let set: ReplicaSet;
  let guarded: ResilientShard;
  beforeAll(async () => {
    group = await startReplicationGroup({ replicas: 2 });
    set = await ReplicaSet.connect({
      id: "s1",
      discovery: new StaticDiscovery({ primary: group.primary.address, replicas: group.replicas.map((r) => r.address) }),
      readFrom: "replica",
      writeAcks: 2, // both replicas hold every acknowledged write, so either may serve it
      probeIntervalMs: 200,
      attemptTimeoutMs: 200,
      readAttemptTimeoutMs: 200,
      requestTimeoutMs: 1000,
    });
    guarded = guardShard(set, set.tuning, IGNORE_OBSERVER);
  });
  afterAll(async () => {
    await set.close();
    await group.stop();
  });

  test("health lists the role of every member", async () => {
    const health = await set.health();
    expect(health.ok).toBe(true);
    expect(health.detail?.["roles"]).toEqual({
      [group.primary.address]: "primary",
      [group.replicas[0]!.address]: "replica",
      [group.replicas[1]!.address]: "replica",
    });
    const stats = set.stats();
    expect(stats.writeAcks).toBe(2);
    expect(stats.members.every((m) => m.healthy && m.latencyEwmaMs !== null)).toBe(true);
  });

  test("a stalled replica (SIGSTOP) is skipped by the read retry within the request timeout and comes back after SIGCONT", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `stop@1/k=i${i}`);
    await guarded.putMany(keys.map((key, i) => ({ key, row: { ts: 1, values: [i] } })));
    const before = set.stats().members;
    const preferred = before.filter((m) => m.role === "replica").sort((a, b) => a.latencyEwmaMs! - b.latencyEwmaMs!)[0]!;
    const victim = group.replicas.find((r) => r.address === preferred.address)!;
    const other = group.replicas.find((r) => r !== victim)!;
    victim.pause();
    try {
      let slowest = 0;
      for (let i = 0; i < 30; i++) {
        const started = performance.now();
        const got = await guarded.getMany(keys);
        slowest = Math.max(slowest, performance.now() - started);
        expect(got.includes(UNAVAILABLE)).toBe(false);
        expect(got.map((r) => (r === undefined || r === UNAVAILABLE ? null : r.values[0]))).toEqual(keys.map((_, j) => j));
        await Bun.sleep(10);
      }
      expect(slowest).toBeLessThan(1000);
      const during = memberStats(set, victim.address);
      expect(during.healthy).toBe(false);
      expect(memberStats(set, other.address).healthy).toBe(true);
    } finally {
      victim.resume();
    }
    const back = await until(() => memberStats(set, victim.address).healthy, 3000);
    expect(back).toBe(true);
  });

  test("a write no replica can confirm fails as retryable after the window, never silently", async () => {
    const lonely = await ReplicaSet.connect({
      id: "lonely",
      discovery: new StaticDiscovery({ primary: group.primary.address, replicas: [] }),
      writeAcks: 3,
      ackTimeoutMs: 50,
      failoverWindowMs: 300,
    });
    try {
      const attempt = guardShard(lonely, lonely.tuning, IGNORE_OBSERVER).putMany([{ key: "acks@1/k=i1", row: { ts: 1, values: [1] } }]);
      await expect(attempt).rejects.toMatchObject({ code: "write_not_acknowledged", retryable: true, kind: "unavailable" });
      expect(lonely.stats().writesNotAcknowledged).toBeGreaterThan(0);
    } finally {
      await lonely.close();
    }
  });
});

test("a write to a primary whose connection is down is refused before anything is sent, and says so; one to a primary that stopped answering may have landed", async () => {
  const [stopped, hung] = await Promise.all([startRedis(), startRedis()]);
  const connect = (server: RedisProcess, id: string) =>
    ReplicaSet.connect({ id, discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, attemptTimeoutMs: 200, failoverWindowMs: 100 });
  const [down, slow] = await Promise.all([connect(stopped, "down"), connect(hung, "slow")]);
  const put = (node: { putMany: ReplicaSet["putMany"] }): Promise<unknown> => node.putMany([{ key: "sent@1/k=i1", row: { ts: 1, values: [1] } }]).then(() => "written", (e: unknown) => e);
  try {
    await stopped.stop();
    // Once the client has seen the connection close (milliseconds), every write is refused without being sent.
    let refused: unknown;
    const refusedNow = async (): Promise<boolean> => {
      refused = await put(down);
      return sentNothing(refused);
    };
    expect(await until(refusedNow, 5000)).toBe(true);
    expect(refused).toMatchObject({ code: "shard_unavailable", retryable: true, kind: "unavailable" });
    // Behind its policies (retried through the failover window), the call as a whole sent nothing either.
    expect(sentNothing(await put(guardShard(down, down.tuning, IGNORE_OBSERVER)))).toBe(true);
    hung.pause();
    const timedOut = await put(slow);
    expect(timedOut).toBeInstanceOf(StorageTimeoutError);
    expect(sentNothing(timedOut)).toBe(false);
  } finally {
    hung.resume();
    await Promise.allSettled([down.close(), slow.close()]);
    await Promise.allSettled([stopped.stop(), hung.stop()]);
  }
});

/**
 * A TCP proxy to `targetPort` that counts the bytes it passed towards the
 * server; `cut()` stops listening (reconnects are refused) and closes the
 * client side of every connection, keeping the server side open: what was
 * passed on is still read and run by the server, its reply goes nowhere.
 */
async function cuttableProxy(targetPort: number): Promise<{ port: number; toServer(): number; cut(): void; close(): void }> {
  const clients = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let bytes = 0;
  const server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    clients.add(client);
    upstreams.add(upstream);
    client.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk);
    });
    client.on("error", () => {});
    upstream.on("error", () => {});
    client.on("close", () => clients.delete(client));
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    toServer: () => bytes,
    cut() {
      server.close();
      for (const c of clients) c.destroy();
    },
    close() {
      server.close();
      for (const s of [...clients, ...upstreams]) s.destroy();
    },
  };
}

test("a write whose connection dropped after it was sent may have landed, and says so, though the retries that follow are refused unsent", async () => {
  const server = await startRedis();
  const proxy = await cuttableProxy(server.port);
  const set = await ReplicaSet.connect({ id: "cut", discovery: new StaticDiscovery({ primary: `127.0.0.1:${proxy.port}`, replicas: [] }), writeAcks: 0, attemptTimeoutMs: 10_000, failoverWindowMs: 300 });
  // Attempts bounded far beyond the test: the dropped connection, not a timeout, ends the first one.
  const guarded = guardShard(set, { ...set.tuning, writeTimeoutMs: 10_000 }, IGNORE_OBSERVER);
  const direct = await RedisKvNode.connect({ host: "127.0.0.1", port: server.port });
  const key = "cut@1/k=i1";
  try {
    server.pause();
    const before = proxy.toServer();
    const put = guarded.putMany([{ key, row: { ts: 7, values: [7] } }]).then(() => "written", (e: unknown) => e);
    // The write is in the server's socket (it runs it when resumed); then the client's connection drops and stays down.
    expect(await until(() => proxy.toServer() > before, 5000)).toBe(true);
    proxy.cut();
    server.resume();
    const error = await put;
    // The retries through the failover window found the connection down (refused, sent nothing); the call may have landed.
    expect(error).toMatchObject({ kind: "unavailable", retryable: true, sent: "maybe" });
    expect(sentNothing(error)).toBe(false);
    expect(await until(async () => (await direct.getMany([key]))[0] !== undefined, 5000)).toBe(true);
    expect(await direct.getMany([key])).toEqual([{ ts: 7, values: [7] }]);
  } finally {
    server.resume();
    proxy.close();
    await Promise.allSettled([set.close(), direct.close()]);
    await server.stop();
  }
});

describe("ReplicaSet reads settle by the caller's deadline (readsSettleByDeadline: the shard policies rely on it)", () => {
  let server: RedisProcess;
  let set: ReplicaSet;
  beforeAll(async () => {
    server = await startRedis();
    set = await ReplicaSet.connect({ id: "alone", discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, readAttemptTimeoutMs: 20 });
  });
  afterAll(async () => {
    server.resume();
    await set.close();
    await server.stop();
  });

  test("a hung member (SIGSTOP): the read fails with a timeout at the deadline, not later", async () => {
    expect(set.readsSettleByDeadline).toBe(true);
    await set.putMany([{ key: "dl@1/k=i1", row: { ts: 1, values: [1] } }]);
    server.pause();
    try {
      // Budgets below and above one attempt (20 ms): the attempt is cut to what is left of the deadline, and
      // a cut attempt's timeout is the caller's (CallerDeadlineError, not counted against the shard).
      for (const [budget, kind] of [
        [15, CallerDeadlineError],
        [60, StorageTimeoutError],
      ] as const) {
        const started = performance.now();
        const err = await set.getMany(["dl@1/k=i1"], { deadline: started + budget }).catch((e: unknown) => e);
        const took = performance.now() - started;
        console.log(JSON.stringify({ replicaSetHungReadMs: Math.round(took * 10) / 10, budget }));
        expect(err).toBeInstanceOf(kind);
        expect(took).toBeLessThan(budget + 150); // generous: the machine is shared
      }
    } finally {
      server.resume();
    }
  });

  test("a long budget gives each attempt at most readAttemptMaxMs: a hung member is given up, not waited on for a third of the budget", async () => {
    const capped = await ReplicaSet.connect({ id: "alone-capped", discovery: new StaticDiscovery({ primary: server.address, replicas: [] }), writeAcks: 0, readAttemptTimeoutMs: 20, readAttemptMaxMs: 100 });
    try {
      await capped.putMany([{ key: "dl@1/k=i3", row: { ts: 1, values: [1] } }]);
      server.pause();
      try {
        // A 60 s budget (the most a lookup may have) gave the attempt 20 s.
        const started = performance.now();
        const err = await capped.getMany(["dl@1/k=i3"], { deadline: started + 60_000 }).catch((e: unknown) => e);
        const took = performance.now() - started;
        expect(err).toBeInstanceOf(StorageTimeoutError);
        expect((err as StorageTimeoutError).budgetMs).toBe(100);
        expect(took).toBeLessThan(5000); // generous: the machine is shared
      } finally {
        server.resume();
      }
    } finally {
      await capped.close();
    }
  });

  test("a read timeout the stall judge blames on this process leaves the member healthy; one it does not marks the member failed", async () => {
    await set.putMany([{ key: "dl@1/k=i2", row: { ts: 1, values: [1] } }]);
    // The same server, judged as the server's loop judge does while the event loop is overloaded.
    const judged = await ReplicaSet.connect({
      id: "alone-judged",
      discovery: new StaticDiscovery({ primary: server.address, replicas: [] }),
      writeAcks: 0,
      readAttemptTimeoutMs: 20,
      probeIntervalMs: 60_000,
      stall: { stalled: () => ({ cause: "local", why: "event loop overloaded" }) },
    });
    try {
      expect(memberStats(judged, server.address).healthy).toBe(true);
      server.pause();
      try {
        for (const s of [judged, set]) await expect(s.getMany(["dl@1/k=i2"])).rejects.toBeInstanceOf(StorageTimeoutError);
        expect(memberStats(judged, server.address).healthy).toBe(true);
        expect(memberStats(set, server.address).healthy).toBe(false);
      } finally {
        server.resume();
      }
    } finally {
      await judged.close();
    }
  });
});

function memberStats(set: ReplicaSet, address: string) {
  const m = set.stats().members.find((x) => x.address === address);
  if (!m) throw new Error(`no member ${address}`);
  return m;
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await Bun.sleep(50);
  }
  return check();
}
