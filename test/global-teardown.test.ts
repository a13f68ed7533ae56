import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** True while `pid` runs (a zombie, killed and not yet reaped, has ended). */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  const fields = readFileSync(stat, "utf8");
  return fields.slice(fields.lastIndexOf(")") + 2, fields.lastIndexOf(")") + 3) !== "Z";
}

test("a test server its test never stopped is killed when the run ends (the global teardown), not left running", async () => {
  const dir = mkdtempSync(join(tmpdir(), "quiver-teardown-"));
  const pidFile = join(dir, "pid");
  try {
    const child = Bun.spawn([process.execPath, "test", "./test/fixtures/leaky-server.fixture.ts"], {
      cwd: resolve(import.meta.dir, ".."),
      env: { ...process.env, LEAK_PID_FILE: pidFile },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, err] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(code).toBe(0);
    expect(err).toContain("test servers left running by their tests: 1, killed");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    // SIGKILL was sent before the run ended; the kernel ends the process when it next schedules it, which on a
    // loaded machine was after this line (a CI run read it still running). Wait for it, with a generous bound.
    for (let waited = 0; running(pid) && waited < 10_000; waited += 20) await Bun.sleep(20);
    expect(running(pid)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
