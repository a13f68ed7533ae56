import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, unaryCall } from "./support/grpc-client.ts";
import { type QuiverProcess, runQuiverToExit, startQuiver } from "./support/quiver-process.ts";
import { threadsOf } from "./support/threads.ts";

const ROOT = resolve(import.meta.dir, "..");
const dirs: string[] = [];
const procs: QuiverProcess[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "quiver-proc-"));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null) await p.stop("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const json = { "content-type": "application/json" };

/** Builds a Quiver with `flags` in a fresh process: whether it has a gRPC edge, and how many gRPC modules (grpc-js, protobufjs, src/api/grpc) it loaded. */
/** Modules a built server loads only when configured to use them; counted in builtWith. */
interface Loaded {
  edge: boolean;
  grpcModules: number;
  /** The YAML parser and schema validator (registry files are read in a worker). */
  readerModules: number;
  /** The cache tier and lru-cache (L1 is off on the embedded store by default). */
  cacheModules: number;
  /** The shard guard and cockatiel (only a topology's shards have one). */
  shardGuardModules: number;
}

function builtWith(flags: string[]): Loaded {
  const script = `const { buildQuiver } = await import("./src/app.ts");
    const { loadConfig } = await import("./src/config/config.ts");
    const q = await buildQuiver(loadConfig(["--demo-entities", "0", ...process.argv.slice(1)], {}));
    const grpc = Object.keys(require.cache).filter((k) => /[\\\\/](@grpc|protobufjs)[\\\\/]/.test(k) || /[\\\\/]src[\\\\/]api[\\\\/]grpc[\\\\/]/.test(k));
    const loaded = Object.keys(require.cache);
    const count = (re) => loaded.filter((k) => re.test(k.replaceAll("\\\\", "/"))).length;
    console.log(JSON.stringify({
      edge: q.grpc !== undefined,
      grpcModules: grpc.length,
      readerModules: count(/[/]node_modules[/](@sinclair[/]typebox|yaml)[/]|[/]src[/]registry[/]read-definitions\\.ts$/),
      cacheModules: count(/[/]node_modules[/]lru-cache[/]|[/]src[/]cache[/](cache-tier|l1-cache)\\.ts$/),
      shardGuardModules: count(/[/]node_modules[/]cockatiel[/]|[/]src[/]resilience[/](shard-policies|resilient-shard)\\.ts$/),
    }));
    await q.close();
    process.exit(0);`;
  const r = Bun.spawnSync([process.execPath, "-e", script, "--", ...flags], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`probe exited ${r.exitCode}: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString().trim()) as Loaded;
}

describe("server process", () => {
  test("npm start serves gRPC beside HTTP, says where, and exits 0 after draining on SIGTERM", async () => {
    const p = await startQuiver(["--demo-entities", "10"]);
    procs.push(p);
    expect(p.output()).toMatch(/quiver gRPC listening on 127\.0\.0\.1:\d+ \(feast\.serving\.ServingService, GrpcFeatureServer, quiver\.v1\.FeatureService, grpc\.health\.v1\.Health/);
    const c = connect(p.grpcAddress!);
    const ok = await unaryCall<{ feature_names: string[] }>(c.quiver, "Lookup", { features: ["driver_hourly_stats:city"], entities: [{ name: "driver_id", int64_values: ["1001"] }] });
    expect(ok.response!.feature_names).toEqual(["city"]);
    expect((await unaryCall(c.health, "Check", { service: "" })).response).toEqual({ status: "SERVING" });
    c.close();
    expect(await p.stop("SIGTERM")).toBe(0);
    expect(p.output()).toContain("draining");
  });

  test("with gRPC off the server loads none of gRPC's code, serves HTTP, and drains on SIGTERM", async () => {
    // Every young collection walks every code cell the process holds, and gRPC's modules are ~40% of a built server's.
    // Nor, with gRPC on or off, the YAML parser and schema validator (the registry is read in a worker:
    // runtime/off-thread.ts), nor the cache tier or the shard guard, which the embedded store does not use.
    const on = builtWith([]);
    expect(on).toEqual({ edge: true, grpcModules: expect.any(Number), readerModules: 0, cacheModules: 0, shardGuardModules: 0 });
    expect(on.grpcModules).toBeGreaterThan(0);
    expect(builtWith(["--grpc-port", "-1"])).toEqual({ edge: false, grpcModules: 0, readerModules: 0, cacheModules: 0, shardGuardModules: 0 });
    // Configured, they load (the probe sees them).
    expect(builtWith(["--grpc-port", "-1", "--cache-l1", "on"]).cacheModules).toBeGreaterThan(0);

    const p = await startQuiver(["--demo-entities", "10", "--grpc-port", "-1"]);
    procs.push(p);
    expect(p.output()).not.toContain("gRPC listening");
    if (process.platform === "linux") {
      // The runtime's background threads (here the allocator's scavenger) run at nice 19, the serving thread at 0.
      const threads = threadsOf(p.proc.pid);
      expect(threads.find((t) => t.main)?.nice).toBe(0);
      expect(threads.filter((t) => t.name === "mi-scavenger").map((t) => t.nice)).toEqual([19]);
    }
    const res = await fetch(`${p.url}/v1/lookup`, { method: "POST", headers: json, body: JSON.stringify({ features: ["driver_hourly_stats:city"], entities: [{ driver_id: 1001 }] }) });
    expect(res.status).toBe(200);
    expect(await p.stop("SIGTERM")).toBe(0);
    expect(p.output()).toContain("draining");
  });

  test("a gRPC port already taken stops start-up with the setting's name", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await runQuiverToExit(["--demo-entities", "0", "--grpc-port", String(taken.port)]);
      expect(r.code).toBe(1);
      expect(r.output).toContain("--grpc-port / QUIVER_GRPC_PORT");
    } finally {
      taken.stop(true);
    }
  });

  test("an HTTP port already taken stops start-up naming the setting (it was an uncaught stack trace after the warm-up)", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await runQuiverToExit(["--demo-entities", "0", "--grpc-port", "-1", "--port", String(taken.port)]);
      expect(r.code).toBe(1);
      expect(r.output).toContain(`quiver: cannot start: HTTP on 127.0.0.1:${taken.port}`);
      expect(r.output).toContain("(--port / PORT, --host / QUIVER_HOST)");
    } finally {
      taken.stop(true);
    }
  });

  test("with --shutdown-delay, SIGTERM makes /readyz answer 503 while lookups are still served, then the server drains and exits 0", async () => {
    const p = await startQuiver(["--demo-entities", "10", "--grpc-port", "-1", "--shutdown-delay", "3s"]);
    procs.push(p);
    expect((await fetch(`${p.url}/readyz`)).status).toBe(200);
    p.proc.kill("SIGTERM");
    const until = Date.now() + 10_000;
    let unready = false;
    while (!unready && Date.now() < until) {
      unready = (await fetch(`${p.url}/readyz`)).status === 503;
      if (!unready) await Bun.sleep(20);
    }
    expect(unready).toBe(true);
    const res = await fetch(`${p.url}/v1/lookup`, { method: "POST", headers: json, body: JSON.stringify({ features: ["driver_hourly_stats:city"], entities: [{ driver_id: 1001 }] }) });
    expect(res.status).toBe(200);
    expect(await p.proc.exited).toBe(0);
    expect(p.output()).toContain("unready; serving 3000 ms more before draining (--shutdown-delay)");
  });

  test("every acknowledged write survives kill -9 of the server, also pushes in flight together to the same keys", async () => {
    const dataDir = tempDir();
    const first = await startQuiver(["--data-dir", dataDir, "--demo-entities", "0"]);
    procs.push(first);
    const acknowledged: { id: string; spend: number }[] = [];
    const base = Date.now() - 60_000;
    for (let batch = 0; batch < 20; batch++) {
      const rows = Array.from({ length: 25 }, (_, i) => ({ customer_id: `k-${batch}-${i}`, spend_1h: batch * 100 + i, event_timestamp: base + batch }));
      const res = await fetch(`${first.url}/v1/push`, { method: "POST", headers: json, body: JSON.stringify({ featureView: "fraud_signals", rows }) });
      expect(res.status).toBe(200);
      for (const r of rows) acknowledged.push({ id: r.customer_id, spend: r.spend_1h });
    }
    // Overwrite some with newer events: the newest must be what survives.
    const newer = acknowledged.slice(0, 10).map((a) => ({ customer_id: a.id, spend_1h: a.spend + 0.5, event_timestamp: base + 1000 }));
    expect((await fetch(`${first.url}/v1/push`, { method: "POST", headers: json, body: JSON.stringify({ featureView: "fraud_signals", rows: newer }) })).status).toBe(200);
    for (let i = 0; i < 10; i++) acknowledged[i]!.spend += 0.5;
    // Pushes in flight together to the same keys, their events in no order (the SQLite thread commits them one after
    // another, memory takes what the file took): the newest event of each key is what is served and what survives.
    const rounds = 12;
    const inFlight = Array.from({ length: rounds }, (_, b) => {
      const rows = Array.from({ length: 10 }, (_, i) => ({ customer_id: `c-${i}`, spend_1h: b * 100 + i, event_timestamp: base + 2000 + ((b * 5) % rounds) }));
      return fetch(`${first.url}/v1/push`, { method: "POST", headers: json, body: JSON.stringify({ featureView: "fraud_signals", rows }) }).then((r) => r.status);
    });
    expect(await Promise.all(inFlight)).toEqual(Array.from({ length: rounds }, () => 200));
    // (b * 5) % 12 is largest, 11, for b = 7.
    for (let i = 0; i < 10; i++) acknowledged.push({ id: `c-${i}`, spend: 700 + i });
    const served = await fetch(`${first.url}/v1/lookup`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ features: ["fraud_signals:spend_1h"], entities: { customer_id: Array.from({ length: 10 }, (_, i) => `c-${i}`) }, fillDefaults: false }),
    });
    expect(((await served.json()) as { rows: { values: number[] }[] }).rows.map((r) => r.values[0])).toEqual(Array.from({ length: 10 }, (_, i) => 700 + i));

    expect(await first.stop("SIGKILL")).not.toBe(0);

    const second = await startQuiver(["--data-dir", dataDir, "--demo-entities", "0"]);
    procs.push(second);
    const res = await fetch(`${second.url}/v1/lookup`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ features: ["fraud_signals:spend_1h"], entities: { customer_id: acknowledged.map((a) => a.id) }, fillDefaults: false }),
    });
    const body = (await res.json()) as { rows: { values: number[]; statuses: string[] }[] };
    const lost = acknowledged.filter((a, i) => body.rows[i]!.values[0] !== a.spend);
    expect(lost).toEqual([]);
    // SIGTERM closes the files and ends the SQLite thread: the process exits 0 (no worker keeps it alive).
    expect(await second.stop("SIGTERM")).toBe(0);
  });

  test("refuses to start on an invalid registry, listing every problem", async () => {
    const dir = tempDir();
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "entities: []\nfeatureViews:\n  - name: v\n    entities: [ghost]\n    features: [{ name: a, type: float }]\n");
    const { code, output } = await runQuiverToExit(["--registry", file]);
    expect(code).toBe(1);
    expect(output).toContain("2 problem(s) in the registry");
    expect(output).toContain('featureViews[0].entities[0]: unknown entity "ghost"');
    expect(output).toContain("featureViews[0].features[0].type: expected one of");
  });

  test("refuses bad settings, naming the flag or variable", async () => {
    expect((await runQuiverToExit(["--embedded-nodes", "zero"])).output).toContain('--embedded-nodes: expected an integer from 1 to 256, got "zero"');
    expect((await runQuiverToExit(["--prot", "1"])).output).toContain("unknown flag --prot");
    // Settings that would do nothing with the others stop the start too (they were accepted silently).
    const idle = await runQuiverToExit(["--read-from", "replica", "--durability", "full"]);
    expect(idle.code).toBe(1);
    expect(idle.output).toContain("2 setting(s) given would do nothing here");
    expect(idle.output).toContain("--read-from / QUIVER_READ_FROM: applies to Redis shards only, and this server would run on the embedded store (no --topology)");
    expect(idle.output).toContain("--durability / QUIVER_DURABILITY: applies to the embedded store kept on disk only (--data-dir, no --topology)");
  });

  test("serves the README walk-through over a real socket, natively routed and via Hono", async () => {
    const server = await startQuiver(["--demo-entities", "100"]);
    procs.push(server);
    const lookup = await fetch(`${server.url}/v1/lookup`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }] }),
    });
    expect(((await lookup.json()) as { rows: { statuses: string[] }[] }).rows[0]!.statuses).toEqual(["PRESENT"]);
    const feast = await fetch(`${server.url}/get-online-features`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ features: ["driver_hourly_stats:conv_rate"], entities: { driver_id: [1001] } }),
    });
    expect(feast.status).toBe(200);
    expect((await fetch(`${server.url}/v1/lookup`)).status).toBe(405);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect(await server.stop("SIGTERM")).toBe(0);
  });
});
