import { mkdtempSync, rmSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "../../shards/redis-conf.ts";
import { liveProcesses } from "./live-processes.ts";

/**
 * A real `nats-server -js` for integration tests: a free loopback port, its
 * own JetStream store dir in a temp dir, stopped by PID. Never touches a
 * system NATS on 4222.
 */
export interface NatsProcess {
  readonly port: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number;
  readonly dir: string;
  /** SIGTERM (SIGKILL after 3 s), then removes the store dir. Idempotent. */
  stop(): Promise<void>;
}

const live = liveProcesses;

/** The nats-server binary: PATH, or Debian's /usr/sbin (not on PATH for non-root users). */
export function natsServerBinary(): string {
  return Bun.which("nats-server") ?? Bun.which("nats-server", { PATH: "/usr/sbin:/usr/local/sbin:/usr/local/bin" }) ?? "nats-server";
}

/** True once the server on `port` greets a client as `name`: not another server that took the port first (see answersAs). */
function answers(port: number, name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("data", (d) => done(d.toString().startsWith("INFO") && d.toString().includes(`"server_name":"${name}"`)));
    socket.once("error", () => done(false));
    socket.setTimeout(500, () => done(false));
  });
}

/** Starts `nats-server -js` and waits until it greets a client; on `port` when given (a test that points a client there first). */
export async function startNats(options: { readonly port?: number } = {}): Promise<NatsProcess> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), "quiver-nats-"));
    const name = `quiver-test-${process.pid}-${port}-${attempt}`;
    const proc = Bun.spawn([natsServerBinary(), "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir, "-n", name], {
      stdout: "ignore",
      stderr: "ignore",
      stdin: "ignore",
    });
    live.set(proc.pid, proc);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && proc.exitCode === null) {
      if (await answers(port, name)) return handle(proc, port, dir);
      await Bun.sleep(50);
    }
    await terminate(proc);
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error("could not start nats-server -js");
}

async function terminate(proc: Subprocess): Promise<void> {
  live.delete(proc.pid);
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  if (!exited) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

function handle(proc: Subprocess, port: number, dir: string): NatsProcess {
  let stopped = false;
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    pid: proc.pid,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
