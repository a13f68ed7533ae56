import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildQuiver, type Quiver } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { DurableKvNode } from "../src/kv/durable-node.ts";
import { leaseSharedThread } from "../src/kv/durable-thread.ts";

/**
 * A server on the durable embedded store (--data-dir) whose SQLite thread is
 * lost: its nodes reopen their files on a new thread, /readyz stays 200 while
 * they do and fails only once a node gives up (its own disk, not a shared
 * origin), and pushes work again once reopened.
 */
const root = mkdtempSync(join(tmpdir(), "quiver-durable-recovery-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Readyz = { status: number; body: { ready: boolean; unready?: string; store: { detail: { nodes: { id: string; ok: boolean; detail?: Record<string, unknown> }[] } } } };

async function readyz(q: Quiver): Promise<Readyz> {
  const res = await q.http.app.request("/readyz");
  return { status: res.status, body: (await res.json()) as Readyz["body"] };
}

async function push(q: Quiver, customers: number, spend: number): Promise<number> {
  const rows = Array.from({ length: customers }, (_, i) => ({ customer_id: `c${i}`, spend_1h: spend, txn_count_1h: 1, chargeback_flag: false }));
  const res = await q.http.app.request("/v1/push", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ featureView: "fraud_signals", rows }) });
  return res.status;
}

const durableNodes = (q: Quiver): DurableKvNode[] => q.store.members.map((m) => m.node as DurableKvNode);

/** Settles once the last thread ended by loseSharedThread is gone, its files let go: each reopen's wait awaits it. */
let lostEnded: Promise<void> = Promise.resolve();

/** Ends the process's shared SQLite thread (every node's), as a crash would. */
function loseSharedThread(): void {
  const lease = leaseSharedThread();
  lostEnded = lease.thread.ended;
  lease.thread.terminate();
  lease.release();
}

test("the SQLite thread lost: the nodes reopen their files, /readyz stays 200 meanwhile and reports them reopening, pushes work again after", async () => {
  const dir = join(root, "reopen");
  const seen: Readyz[] = [];
  let q!: Quiver;
  const config = loadConfig(["--data-dir", dir, "--embedded-nodes", "2", "--demo-entities", "0", "--grpc-port", "-1"], {});
  q = await buildQuiver(config, {
    durableReopen: {
      sleep: async () => {
        await lostEnded;
        if (seen.length === 0) seen.push(await readyz(q));
      },
    },
  });
  try {
    expect(await push(q, 20, 1)).toBe(200);
    loseSharedThread();
    expect(await Promise.all(durableNodes(q).map((n) => n.recovery()))).toEqual(["open", "open"]);
    // While reopening: ready (a reopen takes seconds), the nodes unhealthy and saying why.
    expect(seen[0]?.status).toBe(200);
    expect(seen[0]?.body.store.detail.nodes.map((n) => n.detail?.state)).toEqual(["reopening", "reopening"]);
    expect(await push(q, 20, 2)).toBe(200);
    const after = await readyz(q);
    expect(after.status).toBe(200);
    expect(after.body.store.detail.nodes.map((n) => [n.ok, n.detail?.reopens])).toEqual([
      [true, 1],
      [true, 1],
    ]);
  } finally {
    await q.close();
  }
  // What was pushed after the reopen is in the files.
  const again = await buildQuiver(config);
  try {
    const res = await again.http.app.request("/v1/lookup", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: ["fraud_signals:spend_1h"], entities: [{ customer_id: "c7" }] }) });
    expect(((await res.json()) as { rows: { values: unknown[] }[] }).rows[0]?.values).toEqual([2]);
  } finally {
    await again.close();
  }
});

test("a node that cannot reopen its file gives up: /readyz fails naming it, and the state gauge says failed", async () => {
  const dir = join(root, "give-up");
  let blocker: Promise<DurableKvNode> | undefined;
  const q = await buildQuiver(loadConfig(["--data-dir", dir, "--embedded-nodes", "2", "--demo-entities", "0", "--grpc-port", "-1"], {}), {
    durableReopen: {
      maxAttempts: 2,
      // embedded-0's file taken by another opener once the lost thread let go of it.
      sleep: async () => {
        await lostEnded;
        blocker ??= DurableKvNode.open("blocker", join(dir, "embedded-0.sqlite"), { thread: false });
        await blocker;
      },
    },
  });
  try {
    expect((await readyz(q)).status).toBe(200);
    loseSharedThread();
    expect(await Promise.all(durableNodes(q).map((n) => n.recovery()))).toEqual(["failed", "open"]);
    const r = await readyz(q);
    expect(r.status).toBe(503);
    expect(r.body.unready).toContain("embedded-0");
    expect(r.body.unready).toContain("could not reopen its file");
    expect(r.body.store.detail.nodes.find((n) => n.id === "embedded-0")?.detail).toMatchObject({ state: "failed", attempts: 2 });
    const metrics = await q.metrics.render();
    expect(metrics).toContain('quiver_embedded_file_state{node="embedded-0",state="failed"} 1');
    expect(metrics).toContain('quiver_embedded_file_reopens{node="embedded-1"} 1');
    // Each node's lost thread, and embedded-0's give-up, are failed writes in GET /admin/anomalies.
    const noted = q.anomalies.query({ limit: 10, kind: "failed_write" }).map((a) => `${a.subject} ${a.reason}`);
    expect(noted.sort()).toEqual(["embedded-0 sqlite_reopen_gave_up", "embedded-0 sqlite_thread_lost", "embedded-1 sqlite_thread_lost"]);
  } finally {
    await q.close();
    await (await blocker)?.close();
  }
});
