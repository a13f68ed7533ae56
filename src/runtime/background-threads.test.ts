import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BACKGROUND_THREADS, BackgroundThreads } from "./background-threads.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fake /proc/self/task: one directory per thread id holding its `comm`. */
function taskDir(threads: Record<number, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "quiver-tasks-"));
  dirs.push(dir);
  for (const [tid, name] of Object.entries(threads)) addThread(dir, Number(tid), name);
  return dir;
}

function addThread(dir: string, tid: number, name: string): void {
  mkdirSync(join(dir, String(tid)));
  writeFileSync(join(dir, String(tid), "comm"), `${name}\n`);
}

describe("background threads", () => {
  test("lowers the JIT's, the scavenger's and the heap's warm-up threads, once each, and leaves the serving thread and the rest", () => {
    const dir = taskDir({ 100: "bun", 101: "JSCWarmUp", 102: "mi-scavenger", 103: "JITWorker", 104: "Bun Pool 0" });
    const calls: [number, number][] = [];
    const bg = new BackgroundThreads({ nice: 19, taskDir: dir, setNice: (tid, nice) => calls.push([tid, nice]) });
    expect(bg.apply().sort()).toEqual(["JITWorker", "JSCWarmUp", "mi-scavenger"]);
    expect(calls.sort()).toEqual([
      [101, 19],
      [102, 19],
      [103, 19],
    ]);
    // A thread started later (the JIT's second worker) is caught by the next check; the others are not set again.
    addThread(dir, 105, "JITWorker");
    expect(bg.apply()).toEqual(["JITWorker"]);
    expect(calls.length).toBe(4);
    expect(bg.describe()).toBe("JITWorker ×2, mi-scavenger, JSCWarmUp");
  });

  test("a thread that cannot be lowered or that ended is skipped; no /proc (not Linux) finds none", () => {
    const dir = taskDir({ 200: "JITWorker", 201: "JITWorker" });
    const bg = new BackgroundThreads({
      nice: 10,
      taskDir: dir,
      setNice: (tid) => {
        if (tid === 200) throw new Error("ESRCH");
      },
    });
    expect(bg.apply()).toEqual(["JITWorker"]);
    expect(bg.describe()).toBe("JITWorker");
    expect(new BackgroundThreads({ nice: 19, taskDir: join(dir, "missing") }).apply()).toEqual([]);
    expect(new BackgroundThreads({ nice: 19, taskDir: join(dir, "missing") }).describe()).toBe("none found");
  });

  test("the nice value is checked", () => {
    expect(() => new BackgroundThreads({ nice: 20 })).toThrow(/0-19/);
    expect(() => new BackgroundThreads({ nice: -1 })).toThrow(/0-19/);
  });

  test.if(process.platform === "linux")("on this runtime, in a process of its own: the scavenger (and any JIT worker) at nice 19, the serving thread at 0", () => {
    const script = `
      const { BackgroundThreads } = await import(${JSON.stringify(resolve(import.meta.dir, "background-threads.ts"))});
      const { threadsOf } = await import(${JSON.stringify(resolve(import.meta.dir, "../../test/support/threads.ts"))});
      // Hot code, so the JIT's optimising tiers (and their threads) start.
      let s = 0;
      const f = (x) => (x * 31) ^ (x >>> 3);
      for (let i = 0; i < 5_000_000; i++) s = (s + f(i)) | 0;
      new BackgroundThreads({ nice: 19 }).apply();
      console.log(JSON.stringify({ s, out: threadsOf(process.pid) }));`;
    const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).toBe(0);
    const { out } = JSON.parse(r.stdout.toString().trim()) as { out: { name: string; nice: number; main: boolean }[] };
    expect(out.find((t) => t.main)?.nice).toBe(0);
    const scavenger = out.filter((t) => t.name === "mi-scavenger");
    expect(scavenger.length).toBeGreaterThan(0);
    for (const t of out) expect([t.name, t.nice]).toEqual([t.name, BACKGROUND_THREADS.includes(t.name) ? 19 : 0]);
  });
});
