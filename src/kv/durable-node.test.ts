import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rejectionOf } from "../../test/support/rejection.ts";
import type { WorkerLike } from "../runtime/worker-calls.ts";
import { DurableKvNode } from "./durable-node.ts";
import { DurableThread, leaseSharedThread } from "./durable-thread.ts";
import type { KvEntry } from "./kv-node.ts";
import { StorageError, sentNothing } from "./storage-errors.ts";

const dir = mkdtempSync(join(tmpdir(), "quiver-durable-thread-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const nextFile = (): string => join(dir, `n${files++}.sqlite`);
const put = (key: string, ts: number, value: string): KvEntry[] => [{ key, row: { ts, values: [value] } }];

/** Turns of this thread's event loop: each a timer that fired (ms: none of the test's figures depend on how long). */
async function turns(n: number): Promise<number> {
  let fired = 0;
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setTimeout(() => resolve(void fired++), 1));
  return fired;
}

/** Whether a promise has settled yet (it is observed from now on). */
function watch<T>(p: Promise<T>): { readonly settled: boolean } {
  const state = { settled: false };
  p.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

describe("durable store on the SQLite thread", () => {
  test("a commit under way holds the SQLite thread, not this one: timers fire, reads and health answer; the write is acknowledged and served only once committed", async () => {
    const thread = new DurableThread();
    const node = await DurableKvNode.open("d", nextFile(), { thread, sync: "full" });
    await node.putMany(put("v@1/k=i1", 1, "old"));
    // The thread stuck in the commit, as on a slow fsync or a WAL checkpoint.
    const release = thread.holdForTest();
    const write = node.putMany(put("v@1/k=i1", 2, "new"));
    const acked = watch(write);
    expect(await turns(5)).toBe(5);
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 1, values: ["old"] }]);
    expect(acked.settled).toBe(false);
    // Health (/readyz) does not wait behind the commit either: the thread is alive, the node is ok.
    const health = node.health();
    const answered = watch(health);
    expect(await turns(5)).toBe(5);
    expect(answered.settled).toBe(true);
    expect((await health).ok).toBe(true);
    release();
    expect(await write).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 2, values: ["new"] }]);
    await node.close();
    thread.terminate();
  });

  test("batches in flight to one key: the newest event wins in memory and in the file, and each outcome says what its rows did", async () => {
    const thread = new DurableThread();
    const file = nextFile();
    const node = await DurableKvNode.open("d", file, { thread });
    await node.putMany(put("v@1/k=i1", 5, "first"));
    const release = thread.holdForTest();
    // All three picked against memory (ts 5) before any commits: each looks like a winner there.
    const newest = node.putMany(put("v@1/k=i1", 20, "newest"));
    const older = node.putMany(put("v@1/k=i1", 10, "older"));
    const replay = node.putMany(put("v@1/k=i1", 20, "replayed"));
    release();
    expect(await Promise.all([newest, older, replay])).toEqual([
      { written: 1, ignored: 0, sameTime: 0 },
      { written: 0, ignored: 1, sameTime: 0 },
      { written: 0, ignored: 1, sameTime: 1 },
    ]);
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 20, values: ["newest"] }]);
    await node.close();
    const reopened = await DurableKvNode.open("d", file, { thread });
    expect(reopened.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 20, values: ["newest"] }]);
    await reopened.close();
    thread.terminate();
  });

  test("batches in flight together (older after newer, same time, a key twice in one batch) end as if made one after another, on the SQLite thread and in this thread", async () => {
    const e = (key: string, ts: number, value: string): KvEntry => ({ key, row: { ts, values: [value] } });
    const scenarios: KvEntry[][][] = [
      [[e("k", 1, "a"), e("k", 3, "b")], [e("k", 2, "c")], [e("k", 3, "d"), e("k", 3, "e")]],
      [[e("k", 5, "a")], [e("k", 5, "b"), e("k", 6, "c")], [e("k", 4, "d"), e("k", 6, "e"), e("k", 7, "f")]],
      [[e("k", 9, "a"), e("j", 1, "x")], [e("k", 1, "b"), e("j", 1, "y")], [e("j", 2, "z")]],
    ];
    const thread = new DurableThread();
    for (const batches of scenarios) {
      const sequential = await DurableKvNode.open("s", nextFile(), { thread: false });
      const outcomes = [];
      for (const b of batches) outcomes.push(await sequential.putMany(b));
      const expected = sequential.getManyNow(["k", "j"]);
      for (const where of [thread, false] as const) {
        const file = nextFile();
        const node = await DurableKvNode.open("d", file, { thread: where });
        // On the thread, every batch is picked against memory before any commits.
        const release = where === false ? () => {} : where.holdForTest();
        const together = batches.map((b) => node.putMany(b));
        release();
        expect(await Promise.all(together)).toEqual(outcomes);
        expect(node.getManyNow(["k", "j"])).toEqual(expected);
        await node.close();
        const reopened = await DurableKvNode.open("d", file, { thread: where });
        expect(reopened.getManyNow(["k", "j"])).toEqual(expected);
        await reopened.close();
      }
      await sequential.close();
    }
    thread.terminate();
  });

  test("close waits for the writes in flight, then lets go of the file; writes after it are refused", async () => {
    const thread = new DurableThread();
    const file = nextFile();
    const node = await DurableKvNode.open("d", file, { thread });
    const release = thread.holdForTest();
    const order: string[] = [];
    const write = node.putMany(put("v@1/k=i1", 1, "in flight")).then(() => order.push("write"));
    const closed = node.close().then(() => order.push("close"));
    expect(String(await rejectionOf(node.putMany(put("v@1/k=i2", 1, "late"))))).toContain("it is closed");
    release();
    await Promise.all([write, closed]);
    expect(order).toEqual(["write", "close"]);
    // Closed means the lock is free: another node opens the file and finds the row.
    const reopened = await DurableKvNode.open("d", file, { thread });
    expect(reopened.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toEqual([{ ts: 1, values: ["in flight"] }, undefined]);
    await reopened.close();
    thread.terminate();
  });

  test("the SQLite thread terminated under a pending write: the write fails with a storage error instead of hanging, and nothing of it is served", async () => {
    let worker: WorkerLike | undefined;
    const thread = new DurableThread((url) => {
      worker = new Worker(url, { type: "module" }) as unknown as WorkerLike;
      return worker;
    });
    const node = await DurableKvNode.open("d", nextFile(), { thread });
    await node.putMany(put("v@1/k=i1", 1, "stored"));
    thread.holdForTest();
    const write = node.putMany(put("v@1/k=i2", 1, "pending"));
    // The worker itself, not the DurableThread: only the runtime's own events can tell the thread ended.
    worker!.terminate();
    const failure = await rejectionOf(write);
    expect(failure).toBeInstanceOf(StorageError);
    expect((failure as StorageError).code).toBe("storage_write_failed");
    expect((failure as Error).message).toContain("may or may not be in the file");
    expect(node.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toEqual([{ ts: 1, values: ["stored"] }, undefined]);
    // Later writes fail at once, the node says it is unwell, and close does not wait for a thread that is gone.
    expect(await rejectionOf(node.putMany(put("v@1/k=i3", 1, "later")))).toBeInstanceOf(StorageError);
    expect((await node.health()).ok).toBe(false);
    await node.close();
  });

  test("writes made after the SQLite thread was lost are refused as never sent, the one it was making as maybe stored", async () => {
    const thread = new DurableThread();
    const node = await DurableKvNode.open("d", nextFile(), { thread });
    thread.holdForTest();
    const pending = node.putMany(put("v@1/k=i1", 1, "pending"));
    thread.terminate();
    const lost = await rejectionOf(pending);
    expect(sentNothing(lost)).toBe(false);
    expect((lost as Error).message).toContain("may or may not be in the file");
    // Never sent to a thread already gone: caches keep their copies and the change feed announces nothing (storeMayHold).
    for (const later of [node.putMany(put("v@1/k=i2", 1, "later")), node.deleteMany(["v@1/k=i3"])]) {
      const refusal = await rejectionOf(later);
      expect(refusal).toBeInstanceOf(StorageError);
      expect((refusal as StorageError).code).toBe("storage_write_failed");
      expect(sentNothing(refusal)).toBe(true);
      expect((refusal as Error).message).not.toContain("may or may not");
      expect((refusal as Error).message).toMatch(/nothing of this (write|delete) was stored/);
    }
    await node.close();
  });

  test("an uncaught error in the SQLite thread fails the write it was making with a storage error", async () => {
    const thread = new DurableThread();
    const node = await DurableKvNode.open("d", nextFile(), { thread });
    thread.crashForTest();
    const failure = await rejectionOf(node.putMany(put("v@1/k=i1", 1, "x")));
    expect(failure).toBeInstanceOf(StorageError);
    expect((failure as Error).message).toContain("crashed (a test asked it to)");
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([undefined]);
    expect(thread.lost).toBeDefined();
    await node.close();
  });

  test("a SQLite thread that cannot start fails the open, naming the file, instead of hanging", async () => {
    const file = nextFile();
    const thread = new DurableThread(() => new Worker(new URL("./no-such-worker.ts", import.meta.url).href, { type: "module" }) as unknown as WorkerLike);
    const failure = await rejectionOf(DurableKvNode.open("d", file, { thread }));
    expect(String(failure)).toContain(`${file}: not opened, the durable store's SQLite thread`);
    expect(String(failure)).not.toContain("restore the file");
  });

  test("a file whose rows memory refuses fails the open and is let go: opened again, it fails the same way, not as in use", async () => {
    const file = nextFile();
    // A row too short to hold an event time: the thread reads it, memory (the serving thread) refuses it.
    const db = new Database(file, { create: true });
    db.run("CREATE TABLE rows (k TEXT PRIMARY KEY, ts REAL NOT NULL, v BLOB NOT NULL) WITHOUT ROWID");
    db.run("INSERT INTO rows VALUES ('v@1/k=i1', 1, x'01')");
    db.close();
    const thread = new DurableThread();
    // Another node on the thread, as a server's other nodes: the thread lives on after the failed open.
    const other = await DurableKvNode.open("other", nextFile(), { thread });
    for (const attempt of [1, 2]) {
      const failure = String(await rejectionOf(DurableKvNode.open("d", file, { thread })));
      expect(`${attempt}: ${failure}`).toContain(`${attempt}: Error: ${file}: stored row too short: 1 bytes`);
    }
    await other.close();
    thread.terminate();
  });

  test("one shared SQLite thread for the process's durable files, ended with the last of them and started anew for the next", async () => {
    const a = leaseSharedThread();
    const b = leaseSharedThread();
    expect(b.thread).toBe(a.thread);
    a.release();
    expect(a.thread.lost).toBeUndefined();
    b.release();
    expect(a.thread.lost).toBeDefined();
    const c = leaseSharedThread();
    expect(c.thread).not.toBe(a.thread);
    // Nodes opened without a thread of their own share it, and their files open, write and close there.
    const nodes = await Promise.all([0, 1, 2].map((i) => DurableKvNode.open(`d${i}`, nextFile())));
    await Promise.all(nodes.map((n, i) => n.putMany(put("v@1/k=i1", 1, `node ${i}`))));
    expect(nodes.map((n) => n.getManyNow(["v@1/k=i1"])[0])).toEqual([0, 1, 2].map((i) => ({ ts: 1, values: [`node ${i}`] })));
    await Promise.all(nodes.map((n) => n.close()));
    expect(c.thread.lost).toBeUndefined();
    c.release();
    expect(c.thread.lost).toBeDefined();
  });
});

/** Reopen options for a test: the back-off's waits recorded (each also waits for the lost worker's end, its lock let go), reopens on `next`. */
function reopenOn(next: DurableThread, lost: DurableThread, extra: { maxAttempts?: number; beforeAttempt?: () => Promise<void> } = {}) {
  const waits: number[] = [];
  return {
    waits,
    reopen: {
      ...(extra.maxAttempts !== undefined ? { maxAttempts: extra.maxAttempts } : {}),
      sleep: async (ms: number) => {
        waits.push(ms);
        await lost.ended;
        await extra.beforeAttempt?.();
      },
      lease: () => ({ thread: next, release: () => {} }),
    },
  };
}

describe("a durable store whose SQLite thread is lost reopens its file on a new one", () => {
  test("a write that committed before the thread was lost (unanswered) is in memory after the reopen; later writes are stored and survive a restart", async () => {
    const lost = new DurableThread();
    const next = new DurableThread();
    const file = nextFile();
    const { waits, reopen } = reopenOn(next, lost);
    const node = await DurableKvNode.open("d", file, { thread: lost, reopen });
    await node.putMany([...put("v@1/k=i1", 1, "old"), ...put("v@1/k=i2", 1, "kept")]);
    const held = lost.holdAfterCommitForTest();
    const write = node.putMany(put("v@1/k=i1", 2, "committed"));
    await held.committed;
    lost.terminate();
    const failure = await rejectionOf(write);
    expect(sentNothing(failure)).toBe(false);
    expect((failure as Error).message).toContain("may or may not be in the file");
    // Not served before the file says so.
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 1, values: ["old"] }]);
    expect(await node.recovery()).toBe("open");
    expect(waits).toEqual([100]);
    expect(node.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toEqual([
      { ts: 2, values: ["committed"] },
      { ts: 1, values: ["kept"] },
    ]);
    const health = await node.health();
    expect(health.ok).toBe(true);
    expect(health.detail).toMatchObject({ state: "open", reopens: 1 });
    expect(await node.putMany(put("v@1/k=i3", 1, "after"))).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    expect(await node.deleteMany(["v@1/k=i2"])).toBe(1);
    await node.close();
    const restarted = await DurableKvNode.open("d", file, { thread: false });
    expect(restarted.getManyNow(["v@1/k=i1", "v@1/k=i2", "v@1/k=i3"])).toEqual([{ ts: 2, values: ["committed"] }, undefined, { ts: 1, values: ["after"] }]);
    await restarted.close();
    next.terminate();
  });

  test("a write the lost thread never committed is neither in memory nor in the file; writes while the file is reopened are refused as never sent", async () => {
    const lost = new DurableThread();
    const next = new DurableThread();
    const file = nextFile();
    let refused: unknown;
    let node!: DurableKvNode;
    const { reopen } = reopenOn(next, lost, {
      // A push while the file is being reopened: refused at once, unsent (503 + Retry-After, retryable).
      beforeAttempt: async () => {
        refused ??= await rejectionOf(node.putMany(put("v@1/k=i3", 1, "while reopening")));
      },
    });
    node = await DurableKvNode.open("d", file, { thread: lost, reopen });
    await node.putMany(put("v@1/k=i1", 1, "stored"));
    lost.holdForTest();
    const write = node.putMany(put("v@1/k=i1", 2, "never committed"));
    const gone = node.deleteMany(["v@1/k=i1"]);
    lost.terminate();
    expect(sentNothing(await rejectionOf(write))).toBe(false);
    expect(sentNothing(await rejectionOf(gone))).toBe(false);
    expect(node.state).toBe("reopening");
    expect(await node.recovery()).toBe("open");
    expect(refused).toBeInstanceOf(StorageError);
    expect(sentNothing(refused)).toBe(true);
    expect((refused as StorageError).retryable).toBe(true);
    expect((refused as Error).message).toContain("is being reopened");
    expect(node.getManyNow(["v@1/k=i1", "v@1/k=i3"])).toEqual([{ ts: 1, values: ["stored"] }, undefined]);
    expect(await node.putMany(put("v@1/k=i2", 1, "after"))).toEqual({ written: 1, ignored: 0, sameTime: 0 });
    await node.close();
    const restarted = await DurableKvNode.open("d", file, { thread: false });
    expect(restarted.getManyNow(["v@1/k=i1", "v@1/k=i2", "v@1/k=i3"])).toEqual([{ ts: 1, values: ["stored"] }, { ts: 1, values: ["after"] }, undefined]);
    await restarted.close();
    next.terminate();
  });

  test("a delete that committed before the thread was lost is gone from memory after the reopen", async () => {
    const lost = new DurableThread();
    const next = new DurableThread();
    const file = nextFile();
    const { reopen } = reopenOn(next, lost);
    const node = await DurableKvNode.open("d", file, { thread: lost, reopen });
    await node.putMany([...put("v@1/k=i1", 1, "stored"), ...put("v@1/k=i2", 1, "kept")]);
    const held = lost.holdAfterCommitForTest();
    const gone = node.deleteMany(["v@1/k=i1"]);
    await held.committed;
    lost.terminate();
    expect(sentNothing(await rejectionOf(gone))).toBe(false);
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 1, values: ["stored"] }]);
    expect(await node.recovery()).toBe("open");
    expect(node.getManyNow(["v@1/k=i1", "v@1/k=i2"])).toEqual([undefined, { ts: 1, values: ["kept"] }]);
    await node.close();
    next.terminate();
  });

  test("a thread lost again soon after each reopen ends in the give-up, not in reopens for ever; one lost after a stable while starts again", async () => {
    const first = new DurableThread();
    const made: DurableThread[] = [];
    let lastLost = first;
    let clock = 0;
    const waits: number[] = [];
    const file = nextFile();
    const node = await DurableKvNode.open("d", file, {
      thread: first,
      reopen: {
        maxAttempts: 3,
        stableMs: 60_000,
        now: () => clock,
        sleep: async (ms: number) => {
          waits.push(ms);
          await lastLost.ended;
        },
        lease: () => {
          const t = new DurableThread();
          made.push(t);
          return { thread: t, release: () => {} };
        },
      },
    });
    await node.putMany(put("v@1/k=i1", 1, "stored"));
    const lose = (t: DurableThread) => {
      lastLost = t;
      t.terminate();
    };
    lose(first);
    expect(await node.recovery()).toBe("open");
    // A minute of stable running later: a new loss starts its attempts again.
    clock += 60_000;
    lose(made.at(-1)!);
    expect(await node.recovery()).toBe("open");
    expect(waits).toEqual([100, 100]);
    // Lost again right after each reopen (a thread that dies at once): the attempts go on counting, and end.
    lose(made.at(-1)!);
    expect(await node.recovery()).toBe("open");
    lose(made.at(-1)!);
    expect(await node.recovery()).toBe("open");
    lose(made.at(-1)!);
    expect(await node.recovery()).toBe("failed");
    expect(waits).toEqual([100, 100, 200, 400]);
    const health = await node.health();
    expect(health.detail).toMatchObject({ state: "failed", attempts: 3, maxAttempts: 3 });
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 1, values: ["stored"] }]);
    await node.close();
    for (const t of made) t.terminate();
  });

  test("a file that cannot be reopened: the node gives up after its attempts, with waits doubling, and health says so", async () => {
    const lost = new DurableThread();
    const next = new DurableThread();
    const file = nextFile();
    let blocker: DurableKvNode | undefined;
    const { waits, reopen } = reopenOn(next, lost, {
      maxAttempts: 4,
      // The file taken by another opener once the lost thread let go of it: every reopen finds it in use.
      beforeAttempt: async () => {
        blocker ??= await DurableKvNode.open("blocker", file, { thread: false });
      },
    });
    const node = await DurableKvNode.open("d", file, { thread: lost, reopen });
    await node.putMany(put("v@1/k=i1", 1, "stored"));
    lost.terminate();
    expect(await node.recovery()).toBe("failed");
    expect(waits).toEqual([100, 200, 400, 800]);
    const health = await node.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatchObject({ kind: "sqlite", state: "failed", attempts: 4, maxAttempts: 4 });
    expect(String(health.detail?.error)).toContain("is in use by another process");
    // Reads go on from memory; writes are refused, unsent, naming why.
    expect(node.getManyNow(["v@1/k=i1"])).toEqual([{ ts: 1, values: ["stored"] }]);
    const refused = await rejectionOf(node.putMany(put("v@1/k=i2", 1, "x")));
    expect(sentNothing(refused)).toBe(true);
    expect((refused as Error).message).toContain("could not be reopened in 4 attempts");
    await node.close();
    await blocker?.close();
    next.terminate();
  });
});

