import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { withRedis } from "../shards/redis-probe.ts";
import { UNAVAILABLE } from "../src/kv/kv-node.ts";
import { RedisKvNode } from "../src/kv/redis-node.ts";
import { runKvContract } from "./kv-contract.ts";
import { type RedisProcess, startRedis } from "./support/redis-process.ts";

runKvContract("RedisKvNode", async () => {
  const server = await startRedis();
  const node = await RedisKvNode.connect({ host: server.host, port: server.port });
  return {
    node,
    async dispose() {
      await node.close();
      await server.stop();
    },
  };
});

describe("RedisKvNode", () => {
  let server: RedisProcess;
  let node: RedisKvNode;
  beforeAll(async () => {
    server = await startRedis();
    node = await RedisKvNode.connect({ host: server.host, port: server.port, commandTimeoutMs: 300 });
  });
  afterAll(async () => {
    await node.close();
    await server.stop();
  });

  test("a stored value that is not a row is UNAVAILABLE for its key alone; the batch's other keys read, and health says how many", async () => {
    await node.putMany([{ key: "bad@1/k=i2", row: { ts: 10, values: [2] } }]);
    await withRedis(server.address, (r) => r.set("bad@1/k=i1", "not a row at all"));
    const got = await node.getMany(["bad@1/k=i1", "bad@1/k=i2", "bad@1/k=i3"]);
    expect(got).toEqual([UNAVAILABLE, { ts: 10, values: [2] }, undefined]);
    expect((await node.health()).detail?.["unreadableRows"]).toBe(1);
  });

  test("scan treats glob characters in the prefix literally", async () => {
    await node.putMany([
      { key: "g*b@1/k=i1", row: { ts: 1, values: [1] } },
      { key: "gab@1/k=i1", row: { ts: 1, values: [2] } },
      { key: "g[a]b@1/k=i1", row: { ts: 1, values: [3] } },
    ]);
    const page = await node.scan("0", 1000, "g*b@1/");
    expect(page.keys).toEqual(["g*b@1/k=i1"]);
    expect((await node.scan("0", 1000, "g[a]b@")).keys).toEqual(["g[a]b@1/k=i1"]);
  });

  test("writes still apply when the server lost its script cache", async () => {
    await withRedis(server.address, (r) => r.script("FLUSH"));
    expect(await node.putMany([{ key: "flush@1/k=i1", row: { ts: 2, values: ["x"] } }])).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    expect(await node.putManyAcked([{ key: "flush@1/k=i1", row: { ts: 3, values: ["y"] } }], 0, 100)).toEqual({ written: 1, ignored: 0, sameTime: 0, acked: 0 });
  });

  test("a write that no replica confirms fails as retryable, never silently", async () => {
    const attempt = node.putManyAcked([{ key: "ack@1/k=i1", row: { ts: 1, values: [1] } }], 1, 100);
    await expect(attempt).rejects.toMatchObject({ code: "write_not_acknowledged", retryable: true });
  });

  test("a paused server turns into a timeout, not a hang", async () => {
    server.pause();
    try {
      const started = performance.now();
      await expect(node.getMany(["x@1/k=i1"])).rejects.toMatchObject({ code: "storage_timeout" });
      expect(performance.now() - started).toBeLessThan(1000);
      expect((await node.health()).ok).toBe(false);
    } finally {
      server.resume();
    }
    await Bun.sleep(50);
    expect(await node.getMany(["flush@1/k=i1"])).toEqual([{ ts: 3, values: ["y"] }]);
  });

  test("compare-and-delete keeps rows that got newer than the copy", async () => {
    await node.putMany([
      { key: "cad@1/k=i1", row: { ts: 10, values: [1] } },
      { key: "cad@1/k=i2", row: { ts: 30, values: [2] } },
      { key: "cad@1/k=i3", row: { ts: 20, values: [3] } },
    ]);
    const kept = await node.deleteIfNotNewer([
      { key: "cad@1/k=i1", ts: 10 },
      { key: "cad@1/k=i2", ts: 20 },
      { key: "cad@1/k=i3", ts: 25 },
      { key: "cad@1/k=i4", ts: 1 },
    ]);
    expect(kept).toEqual(["cad@1/k=i2"]);
    expect(await node.getMany(["cad@1/k=i1", "cad@1/k=i2", "cad@1/k=i3"])).toEqual([undefined, { ts: 30, values: [2] }, undefined]);
    expect(await node.size()).toBeGreaterThan(0);
  });

  test("role reports a standalone server as a master", async () => {
    expect(await node.role()).toMatchObject({ role: "master", replicas: [] });
  });
});
