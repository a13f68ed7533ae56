import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redisConfText } from "../shards/redis-conf.ts";
import { answersAs, answersPing, waitUntil } from "../shards/redis-probe.ts";
import { startRedis } from "./support/redis-process.ts";

/**
 * A server started on a port another one already holds exits unable to bind,
 * while the other answers PING for it: the harness once took such a replica
 * for started, and its primary waited for a replica that never was (a
 * resilience test's set-up failed in CI). answersAs asks the server's pid.
 */
test("a PING can be answered by another server on the port; answersAs tells whose it is", async () => {
  const holder = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "quiver-probe-"));
  try {
    const conf = join(dir, "redis.conf");
    writeFileSync(conf, redisConfText({ port: holder.port, dir, appendOnly: false, daemonize: false }));
    const late = Bun.spawn(["redis-server", conf], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    await late.exited;
    expect(await answersPing(holder.address)).toBe(true);
    expect(await answersAs(holder.address, late.pid)).toBe(false);
    expect(await waitUntil(() => answersAs(holder.address, holder.pid), 5000)).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await holder.stop();
  }
});
