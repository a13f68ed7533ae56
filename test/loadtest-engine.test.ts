import { afterAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { parseCli } from "../loadtest/args.ts";
import type { LoadConnection } from "../loadtest/engine/load-connection.ts";
import { runLoad } from "../loadtest/engine/run-load.ts";
import { tailConcentration } from "../loadtest/engine/timeline.ts";
import { parseKeySpec } from "../loadtest/keys.ts";
import type { ConnectionListener } from "../loadtest/http1/connection.ts";
import { formatSummary } from "../loadtest/output/table.ts";
import { buildTemplates, runOnce } from "../loadtest/run.ts";
import type { RunOptions } from "../loadtest/run.ts";

const servers: Server<undefined>[] = [];
afterAll(() => {
  for (const s of servers) s.stop(true);
});

function serve(fetch: (req: Request) => Response | Promise<Response>): URL {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch });
  servers.push(s);
  return new URL(`http://127.0.0.1:${s.port}`);
}

const base = (target: URL, o: Partial<RunOptions> = {}): RunOptions => ({
  scenario: "get",
  target,
  mode: "open",
  rate: 500,
  connections: 8,
  durationMs: 2000,
  warmupMs: 0,
  timeoutMs: 1000,
  gcPaceMs: 0,
  keys: "uniform",
  entities: 1000,
  seed: "1",
  batch: undefined,
  writeRatio: 0.1,
  view: "driver_hourly_stats",
  features: undefined,
  path: "/",
  maxRequests: 100_000,
  label: undefined,
  ...o,
});

/** Answers at once, except that requests arriving in [500, 600) ms of every second wait for the window's end. */
function stallingServer(): URL {
  const t0 = performance.now();
  return serve(async () => {
    const phase = (performance.now() - t0) % 1000;
    if (phase >= 500 && phase < 600) await Bun.sleep(600 - phase);
    return new Response("ok");
  });
}

describe("coordinated-omission correction", () => {
  test("a 100 ms stall per second shows in the open-loop p99 but hides from a closed-loop run", async () => {
    const [open, closed] = await Promise.all([
      runOnce(base(stallingServer(), { mode: "open", rate: 500, connections: 4 })),
      runOnce(base(stallingServer(), { mode: "closed", connections: 1 })),
    ]);
    // ~10% of intended send times fall in a stall: p99 sits deep inside it.
    expect(open.latencyMs.p99).toBeGreaterThan(50);
    expect(open.latencyMs.p50).toBeLessThan(20);
    expect(open.latencyMs.max).toBeGreaterThan(80);
    // With every connection held by the stall, due requests wait for one: send lag, but not the generator's own.
    expect(open.sendLagMs.p99).toBeGreaterThan(30);
    expect(open.ownSendLagMs.p99).toBeLessThan(open.sendLagMs.p99 / 2);
    // The closed loop sees the stall (max) in only one request per stall.
    expect(closed.latencyMs.max).toBeGreaterThan(80);
    expect(closed.latencyMs.p99).toBeLessThan(20);
    expect(open.requests.errors).toBe(0);
    // The timeline puts the slow requests in the stalls' windows: two stalls in 20 windows of 100 ms.
    const tail = tailConcentration(open.timeline!, open.latencyMs.p99)!;
    expect(tail.windows).toBe(20);
    expect(tail.windowsWithSlow).toBeLessThanOrEqual(6);
    expect(tail.windowsForHalf).toBeLessThanOrEqual(3);
    expect(formatSummary(open)).toContain(`over ${tail.boundMs} ms: `);
  });
});

describe("open and closed loops", () => {
  test("an open loop holds its rate and records every request it planned", async () => {
    const target = serve(() => new Response("ok"));
    const r = await runOnce(base(target, { rate: 1000, durationMs: 1000, warmupMs: 200 }));
    expect(r.requests.sent).toBe(1200);
    expect(r.latencyMs.count).toBe(1000);
    // The timeline starts with the measured window: ten windows of 100 ms, the warm-up's answers left out.
    expect(r.timeline!.count.length).toBe(10);
    expect(r.timeline!.count.reduce((a, b) => a + b, 0)).toBe(1000);
    // Every planned request was sent and recorded (above). The achieved rate can only fall short of
    // the target on a busy machine (late completions stretch the window), never exceed its schedule.
    expect(r.rate.achieved).toBeGreaterThan(0);
    expect(r.rate.achieved).toBeLessThan(1100);
    expect(r.requests.errors).toBe(0);
  });

  test("in an open loop a straggler's timeout does not stretch the achieved rate's window", async () => {
    // One request near the end never answers (timeout 300 ms): the window ran to its timeout, and a step sent on
    // schedule read as 1/1.3 of its rate (find-max failed such steps as "achieved < 90%").
    const t0 = performance.now();
    let hung = false;
    const target = serve(async () => {
      if (!hung && performance.now() - t0 > 850) {
        hung = true;
        await Bun.sleep(2000);
      }
      return new Response("ok");
    });
    const r = await runOnce(base(target, { rate: 500, durationMs: 1000, timeoutMs: 300, connections: 16 }));
    expect(r.requests.errors).toBe(1);
    expect(r.rate.achieved).toBeGreaterThan(0.85 * 500);
  });

  test("a closed loop keeps every connection busy", async () => {
    const target = serve(() => new Response("ok"));
    const r = await runOnce(base(target, { mode: "closed", connections: 4, durationMs: 500 }));
    expect(r.requests.ok).toBeGreaterThan(200);
    expect(r.rate.target).toBeNull();
  });

  test("errors are counted by kind: HTTP statuses, timeouts, resets", async () => {
    let n = 0;
    const target = serve(async () => {
      n++;
      if (n % 10 === 0) return new Response("no", { status: 503 });
      if (n % 10 === 5) {
        await Bun.sleep(400);
        return new Response("late");
      }
      return new Response("ok");
    });
    const r = await runOnce(base(target, { rate: 200, durationMs: 500, timeoutMs: 150 }));
    expect(r.errorsByKind["http_503"]).toBeGreaterThan(0);
    expect(r.errorsByKind["timeout"]).toBeGreaterThan(0);
    expect(r.requests.ok + r.requests.errors).toBe(r.requests.sent);
  });

  test("a connection closed mid-request counts as a reset and is reopened", async () => {
    let n = 0;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          n++;
          if (n % 4 === 0) socket.end();
          else socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        },
      },
    });
    try {
      const r = await runOnce(base(new URL(`http://127.0.0.1:${listener.port}`), { rate: 200, durationMs: 500, connections: 2 }));
      expect(r.errorsByKind["reset"]).toBeGreaterThan(10);
      expect(r.requests.ok).toBeGreaterThan(50);
    } finally {
      listener.stop(true);
    }
  });

  test("a server that is down is an error, not a hang", async () => {
    const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    const port = s.port;
    s.stop(true);
    await expect(runOnce(base(new URL(`http://127.0.0.1:${port}`), { durationMs: 200 }))).rejects.toThrow("cannot connect");
  });
});

describe("the generator's paced young collections (--gc-pace)", () => {
  test("collected every interval while the run lasts and reported; 0 leaves them to the runtime", async () => {
    const target = serve(() => new Response("ok"));
    const paced = await runOnce(base(target, { rate: 200, durationMs: 300, gcPaceMs: 10 }));
    expect(paced.generatorGc).not.toBeNull();
    expect(paced.generatorGc!.everyMs).toBe(10);
    expect(paced.generatorGc!.collections).toBeGreaterThan(0);
    expect(paced.generatorGc!.maxPauseMs).toBeGreaterThanOrEqual(paced.generatorGc!.meanPauseMs);
    expect(formatSummary(paced)).toContain("young collections every 10.0 ms");
    const unpaced = await runOnce(base(target, { rate: 200, durationMs: 100, gcPaceMs: 0 }));
    expect(unpaced.generatorGc).toBeNull();
  });

  test("the engine calls the collector it is given, and stops with the run", async () => {
    const target = serve(() => new Response("ok"));
    let calls = 0;
    const gc = { collect: () => void calls++, heapBytes: () => 0 };
    const run = (everyMs: number) =>
      runLoad({
        mode: "open",
        hostname: "127.0.0.1",
        port: Number(target.port),
        rate: 100,
        connections: 4,
        durationMs: 200,
        warmupMs: 0,
        timeoutMs: 1000,
        templates: buildTemplates(base(target)).templates,
        weights: [1],
        keys: parseKeySpec("uniform", 100),
        seed: 1,
        maxRequests: 1000,
        gcPace: { gc, everyMs },
      });
    const out = await run(5);
    expect(out.gcPace?.collections).toBe(calls);
    expect(calls).toBeGreaterThan(0);
    const after = calls;
    await Bun.sleep(30);
    expect(calls).toBe(after);
    await expect(run(0)).rejects.toThrow("gc pace");
  });

  test("--gc-pace: 10 ms by default, a duration, 0 for off, anything else refused by name", () => {
    const argv = ["--target", "http://127.0.0.1:1"];
    expect(parseCli(argv).gcPaceMs).toBe(10);
    expect(parseCli([...argv, "--gc-pace", "5ms"]).gcPaceMs).toBe(5);
    expect(parseCli([...argv, "--gc-pace", "0"]).gcPaceMs).toBe(0);
    expect(() => parseCli([...argv, "--gc-pace", "often"])).toThrow("--gc-pace");
  });

  test("options the run would ignore are refused by name, as are a target with a path and a path that would break the request line", () => {
    const refused = (extra: string[], message: string) => expect(() => parseCli(["--target", "http://127.0.0.1:1", ...extra])).toThrow(message);
    // A prefix was dropped: requests went to /v1/lookup at the root.
    refused(["--target", "http://127.0.0.1:1/quiver"], "--target: a base URL without a path");
    refused(["--target", "http://127.0.0.1:1/?x=1"], "--target: a base URL without a path");
    refused(["--scenario", "get", "--path", "metrics"], '--path: expected a path starting with "/"');
    refused(["--scenario", "get", "--path", "/healthz x"], "--path: expected a path");
    refused(["--scenario", "get", "--path", "/a\r\nx-evil: 1"], "--path: expected a path");
    refused(["--find-max", "--mode", "closed"], "--mode: --find-max always runs open-loop steps");
    refused(["--find-max", "--rate", "500"], "--rate: --find-max sets each step's rate");
    refused(["--find-max", "--duration", "5s"], "--duration: --find-max runs each step for --step-duration");
    refused(["--mode", "closed", "--rate", "5000"], "--rate: a closed-loop run sends as fast as --connections allow");
    refused(["--max-rate", "400"], "--max-rate: it is a --find-max setting");
    refused(["--scenario", "lookup", "--path", "/metrics"], '--path: only the "get" scenario');
    refused(["--scenario", "push", "--write-ratio", "0.5"], '--write-ratio: only the "mixed" scenario');
    // What applies is taken.
    expect(parseCli(["--target", "http://127.0.0.1:1/", "--scenario", "get", "--path", "/metrics?x=1", "--mode", "closed"]).path).toBe("/metrics?x=1");
    expect(parseCli(["--target", "http://127.0.0.1:1", "--find-max", "--max-rate", "400", "--step-duration", "1s"]).maxRate).toBe(400);
    expect(parseCli(["--target", "http://127.0.0.1:1", "--scenario", "mixed", "--write-ratio", "0.5", "--rate", "10"]).writeRatio).toBe(0.5);
  });
});

describe("connections told ready twice", () => {
  test("a connection that reconnects while free never carries two requests at once (closed and open loops)", async () => {
    for (const mode of ["closed", "open"] as const) {
      let most = 0;
      let answered = 0;
      // Each connection answers 1 ms after a send, and after every 5th answer says it is ready again, as one whose
      // idle socket the server closed and which reconnected while the engine still held it among the free ones.
      const open = (_id: number, listener: ConnectionListener<LoadConnection>) => {
        let inFlight = 0;
        const conn: LoadConnection = {
          busy: false,
          intendedAt: 0,
          sentAt: 0,
          idleAt: 0,
          template: 0,
          buffers: [],
          connect: async () => {},
          send(_bytes, now) {
            conn.sentAt = now;
            conn.busy = true;
            inFlight++;
            most = Math.max(most, inFlight);
            setTimeout(() => {
              inFlight--;
              conn.busy = false;
              listener.onResponse(conn, 200, true);
              if (++answered % 5 === 0) listener.onReady(conn);
            }, 1);
          },
          abort() {},
          stop() {},
        };
        return conn;
      };
      const { templates, weights } = buildTemplates(base(new URL("http://127.0.0.1:1"), { scenario: "get" }));
      const out = await runLoad({
        mode,
        hostname: "127.0.0.1",
        port: 1,
        rate: 400,
        connections: 4,
        durationMs: 300,
        warmupMs: 0,
        timeoutMs: 1000,
        templates,
        weights,
        keys: parseKeySpec("uniform", 1000),
        seed: 1,
        maxRequests: 100_000,
        openConnection: open,
      });
      expect(out.recorder.ok).toBeGreaterThan(20);
      expect(most).toBe(1);
    }
  });
});
