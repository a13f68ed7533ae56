import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type QuiverProcess, startQuiver } from "./support/quiver-process.ts";

/**
 * k6 cannot be installed here, so the scripts are checked the way k6 would load
 * them: plain ES modules importing only k6's own modules, with the SLO thresholds
 * and executors the README promises; then their default functions run against a
 * real Quiver server through k6 look-alike modules (requests go out with curl, so
 * http.post stays synchronous as in k6) and every k6 `check` must pass.
 */

const root = resolve(import.meta.dir, "..");
const k6Dir = `${root}/k6`;
const scripts = readdirSync(k6Dir).filter((f) => f.endsWith(".js"));
const K6_MODULES = new Set(["k6", "k6/http", "k6/metrics", "k6/data", "k6/net/grpc"]);
const transpiler = new Bun.Transpiler({ loader: "js" });

function importsOf(path: string): string[] {
  return transpiler.scan(readFileSync(path, "utf8")).imports.map((i) => i.path);
}

describe("k6 scripts: static checks", () => {
  test("there is a script per scenario", () => {
    expect(scripts.sort()).toEqual(["batch-lookup.js", "feast.js", "grpc-lookup.js", "lookup.js", "mixed.js", "push.js"]);
  });

  for (const file of scripts) {
    test(`${file} parses as an ES module and imports only k6 modules (directly or via ./lib)`, () => {
      const seen = new Set<string>();
      const visit = (path: string) => {
        if (seen.has(path)) return;
        seen.add(path);
        const check = Bun.spawnSync(["node", "--check", path], { stderr: "pipe" });
        expect(check.stderr.toString()).toBe("");
        expect(check.exitCode).toBe(0);
        const text = readFileSync(path, "utf8") as string;
        expect(text).not.toMatch(/\brequire\(/);
        for (const spec of importsOf(path)) {
          if (spec.startsWith("./") || spec.startsWith("../")) {
            const resolved = resolve(dirname(path), spec);
            expect(resolved.startsWith(`${k6Dir}/`)).toBe(true);
            visit(resolved);
          } else {
            expect(K6_MODULES.has(spec)).toBe(true);
          }
        }
      };
      visit(`${k6Dir}/${file}`);
      const exports = transpiler.scan(readFileSync(`${k6Dir}/${file}`, "utf8")).exports;
      expect(exports).toContain("options");
      expect(exports).toContain("default");
    });
  }
});

/** What the k6 look-alike modules saw. */
const seen = { grpc: [] as { method: string; status: number; error?: string | undefined }[], requests: [] as { url: string; body: string; status: number }[], checks: [] as { name: string; ok: boolean }[], metrics: [] as string[] };

/** One synchronous POST in a child process (curl, or bun where curl is missing); prints body, newline, status. */
function syncPost(url: string, body: string, headers: Record<string, string>): string {
  if (Bun.which("curl") !== null) {
    const h = Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
    return Bun.spawnSync(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", ...h, "--data-binary", "@-", url], { stdin: new TextEncoder().encode(body) }).stdout.toString();
  }
  const script = "const [u, h] = process.argv.slice(-2); const r = await fetch(u, { method: 'POST', headers: JSON.parse(h), body: await Bun.stdin.text() }); process.stdout.write((await r.text()) + '\\n' + r.status);";
  return Bun.spawnSync([process.execPath, "-e", script, url, JSON.stringify(headers)], { stdin: new TextEncoder().encode(body) }).stdout.toString();
}

/** k6/http's post, synchronous like k6's. */
function post(url: string, body: string, params?: { headers?: Record<string, string> }) {
  const out = syncPost(url, body, params?.headers ?? {});
  const cut = out.lastIndexOf("\n");
  const text = out.slice(0, cut);
  const status = Number(out.slice(cut + 1));
  seen.requests.push({ url, body, status });
  return {
    status,
    body: text,
    json(selector?: string) {
      let v: unknown = JSON.parse(text);
      for (const key of selector ? selector.split(".") : []) v = (v as Record<string, unknown>)[key];
      return v;
    },
  };
}

/** k6's SharedArray: an array built once from the callback's result. */
class SharedArrayLike extends Array {
  constructor(_name: string, build: () => unknown[]) {
    super();
    this.push(...build());
  }
}

class Metric {
  constructor(readonly name: string) {
    seen.metrics.push(name);
  }
  add(): void {}
}

/**
 * k6/net/grpc's Client, synchronous like k6's: each invoke runs a grpc-js client
 * in a child process over the protos the script loaded (proto-loader with JSON
 * field names, int64 as strings and enums as names, as k6's protojson does).
 */
const INVOKE = `
const [paths, files, addr, method, request] = JSON.parse(process.argv.at(-1));
const grpc = require("@grpc/grpc-js");
const { loadSync } = require("@grpc/proto-loader");
const def = loadSync(files, { keepCase: false, longs: String, enums: String, defaults: true, arrays: true, oneofs: true, includeDirs: paths });
const [service, name] = method.split("/");
const Ctor = grpc.makeGenericClientConstructor(def[service], service);
const client = new Ctor(addr, grpc.credentials.createInsecure());
client[name](request, { deadline: Date.now() + 10000 }, (err, message) => {
  process.stdout.write(JSON.stringify(err ? { status: err.code, error: err.details } : { status: 0, message }));
  client.close();
});`;
class GrpcClientLike {
  private paths: string[] = [];
  private files: string[] = [];
  private addr = "";
  load(paths: string[], ...files: string[]): void {
    this.paths = paths.map((p) => resolve(k6Dir, p));
    this.files = files;
  }
  connect(addr: string): void {
    this.addr = addr;
  }
  invoke(method: string, request: unknown): { status: number; message?: unknown; error?: string } {
    const args = JSON.stringify([this.paths, this.files, this.addr, method, request]);
    const out = Bun.spawnSync([process.execPath, "-e", INVOKE, args], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const res = JSON.parse(out.stdout.toString() || `{"status":-1,"error":${JSON.stringify(out.stderr.toString())}}`) as { status: number; message?: unknown; error?: string };
    seen.grpc.push({ method, status: res.status, error: res.error });
    return res;
  }
  close(): void {}
}

let server: QuiverProcess;
// The server has an admin token, so the write scripts' requests are accepted only if they send TOKEN.
const ENV = { GRPC_ADDR: "", QUIVER_URL: "", ENTITIES: "1000", RATE: "1234", DURATION: "5s", BATCH: "", WRITE_RATIO: "0.5", KEYS: "zipf:1.1", TOKEN: "k6-token" };

beforeAll(async () => {
  server = await startQuiver(["--demo-entities", "1000", "--admin-token", ENV.TOKEN]);
  ENV.QUIVER_URL = server.url;
  ENV.GRPC_ADDR = server.grpcAddress!;
  Object.assign(globalThis, { __ENV: ENV, open: (p: string) => readFileSync(resolve(k6Dir, p), "utf8") });
  Bun.plugin({
    name: "k6 look-alike",
    setup(build) {
      build.module("k6", () => ({
        loader: "object",
        exports: {
          check(res: unknown, checks: Record<string, (r: unknown) => boolean>) {
            let all = true;
            for (const [name, fn] of Object.entries(checks)) {
              const ok = fn(res) === true;
              seen.checks.push({ name, ok });
              all &&= ok;
            }
            return all;
          },
          sleep() {},
        },
      }));
      build.module("k6/http", () => ({ loader: "object", exports: { default: { post } } }));
      build.module("k6/net/grpc", () => ({ loader: "object", exports: { default: { Client: GrpcClientLike, StatusOK: 0 } } }));
      build.module("k6/data", () => ({ loader: "object", exports: { SharedArray: SharedArrayLike } }));
      build.module("k6/metrics", () => ({ loader: "object", exports: { Counter: Metric, Rate: Metric, Trend: Metric, Gauge: Metric } }));
    },
  });
}, 40_000);

afterAll(async () => {
  await server?.stop();
});

interface K6Module {
  options: { scenarios: Record<string, { executor: string; rate?: number; stages?: { target: number }[] }>; thresholds: Record<string, string[]> };
  default: () => void;
}

describe("k6 scripts measure the server, not k6", () => {
  for (const file of ["lookup.js", "batch-lookup.js", "feast.js", "push.js", "mixed.js"]) {
    test(`${file}: an iteration sends a prebuilt body and checks status and size, without building or parsing JSON`, () => {
      const text = readFileSync(`${k6Dir}/${file}`, "utf8") as string;
      const iteration = text.slice(text.indexOf("export default function"));
      expect(iteration.length).toBeGreaterThan(0);
      expect(iteration).not.toMatch(/JSON\.(stringify|parse)|\.json\(|\.push\(/);
      expect(text).toMatch(/prebuilt\(/);
    });
  }
});

describe("k6 scripts against the real server", () => {
  for (const file of ["lookup.js", "batch-lookup.js", "feast.js", "push.js", "mixed.js"]) {
    test(`${file}: SLO thresholds, env-driven rate, and requests the server accepts`, async () => {
      const mod = (await import(`${k6Dir}/${file}`)) as K6Module;
      expect(mod.options.thresholds["http_req_duration"]).toEqual(["p(99)<8"]);
      expect(mod.options.thresholds["http_req_failed"]).toEqual(["rate<0.001"]);
      const [scenario] = Object.values(mod.options.scenarios);
      if (file === "mixed.js") {
        expect(scenario?.executor).toBe("ramping-arrival-rate");
        expect(scenario?.stages?.map((s) => s.target)).toEqual([1234, 1234, 0]);
      } else {
        expect(scenario?.executor).toBe("constant-arrival-rate");
        expect(scenario?.rate).toBe(1234);
      }
      seen.requests.length = 0;
      seen.checks.length = 0;
      for (let i = 0; i < 6; i++) mod.default();
      expect(seen.requests.length).toBe(6);
      for (const r of seen.requests) {
        expect(r.url.startsWith(server.url)).toBe(true);
        expect(r.status).toBe(200);
      }
      expect(seen.checks.length).toBeGreaterThanOrEqual(6);
      expect(seen.checks.filter((c) => !c.ok)).toEqual([]);
    });
  }
});

describe("k6 gRPC script against the real server", () => {
  test("grpc-lookup.js: both services at RATE/2 each, the gRPC SLO thresholds, calls the server answers OK", async () => {
    const mod = (await import(`${k6Dir}/grpc-lookup.js`)) as K6Module & { quiverLookup(): void; feastLookup(): void };
    expect(mod.options.thresholds["grpc_req_duration"]).toEqual(["p(99)<8"]);
    expect(mod.options.thresholds["checks"]).toEqual(["rate>0.999"]);
    const scenarios = Object.values(mod.options.scenarios) as { executor: string; rate?: number; exec?: string }[];
    expect(scenarios.map((s) => [s.executor, s.rate, s.exec])).toEqual([
      ["constant-arrival-rate", 617, "quiverLookup"],
      ["constant-arrival-rate", 617, "feastLookup"],
    ]);
    seen.grpc.length = 0;
    seen.checks.length = 0;
    for (let i = 0; i < 3; i++) mod.default();
    expect(seen.grpc.map((g) => [g.method, g.status, g.error])).toEqual(
      new Array(3).fill(0).flatMap(() => [
        ["quiver.v1.FeatureService/Lookup", 0, undefined],
        ["feast.serving.ServingService/GetOnlineFeatures", 0, undefined],
      ]),
    );
    expect(seen.checks).toHaveLength(6);
    expect(seen.checks.filter((c) => !c.ok)).toEqual([]);
  }, 60_000);
});
