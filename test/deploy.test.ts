import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { loadConfig, SETTINGS } from "../src/config/config.ts";
import { compileRegistry, parseDefinitionsText } from "../src/registry/read-definitions.ts";
import { parseTopology } from "../src/shard/index.ts";
import { buildQuiver } from "../src/app.ts";

interface Probe {
  httpGet: { path: string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Doc {
  kind: string;
  data?: Record<string, string>;
  spec: {
    template: {
      spec: {
        containers: { env: { name: string; value?: string }[]; startupProbe: Probe; readinessProbe: Probe; livenessProbe: Probe; volumeMounts: { mountPath: string; readOnly?: boolean }[] }[];
      };
    };
    ports: { port: number }[];
  };
}

const docs = parseAllDocuments(await Bun.file("deploy/kubernetes/quiver.yaml").text()).map((d) => d.toJSON() as Doc);
const byKind = (kind: string) => docs.find((d) => d.kind === kind)!;

describe("deploy manifests", () => {
  test("every environment variable the Deployment sets is a Quiver setting", () => {
    const container = byKind("Deployment").spec.template.spec.containers[0]!;
    const known = new Set(SETTINGS.map((s) => s.env));
    for (const e of container.env) expect(known).toContain(e.name);
  });

  test("what the server writes (the migration checkpoint, beside a topology it reads by default) is on a writable mount", () => {
    const container = byKind("Deployment").spec.template.spec.containers[0]!;
    const env = new Map(container.env.map((e) => [e.name, e.value ?? ""]));
    const checkpoint = env.get("QUIVER_MIGRATION_CHECKPOINT") || `${env.get("QUIVER_TOPOLOGY")}.migration.json`;
    const mount = container.volumeMounts.filter((m) => checkpoint.startsWith(`${m.mountPath}/`)).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    expect(mount).toBeDefined();
    // A read-only mount failed every migration at its first page (EROFS), leaving a topology change undone.
    expect(mount!.readOnly ?? false).toBe(false);
  });

  test("probe paths are real routes that answer 200 on a healthy server", async () => {
    const q = await buildQuiver(loadConfig(["--demo-entities", "0"], {}));
    const spec = byKind("Deployment").spec.template.spec.containers[0]!;
    for (const probe of [spec.startupProbe, spec.readinessProbe, spec.livenessProbe]) {
      expect((await q.http.app.request(probe.httpGet.path)).status).toBe(200);
    }
    await q.close();
  });

  test("a start slower than liveness allows (the store opened, keys moved, the warm-up run before HTTP listens) is covered by a startup probe", () => {
    const spec = byKind("Deployment").spec.template.spec.containers[0]!;
    const window = (p: Probe) => (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3);
    // Liveness alone gave a start 30 s before the kubelet restarted the pod.
    expect(window(spec.startupProbe)).toBeGreaterThanOrEqual(300);
    expect(window(spec.startupProbe)).toBeGreaterThan(window(spec.livenessProbe));
  });

  test("the shipped registry compiles and the topology parses", () => {
    const data = byKind("ConfigMap").data!;
    expect(compileRegistry(parseDefinitionsText(data["registry.yaml"]!)).views.size).toBeGreaterThan(0);
    expect(parseTopology(parseDefinitionsText(data["topology.yaml"]!)).shards).toHaveLength(2);
  });

  test("the Dockerfile's install stage can build the native addons package.json allows (node-gyp needs python3, make, g++)", async () => {
    const pkg = (await Bun.file("package.json").json()) as { allowScripts: Record<string, boolean> };
    const native = Object.entries(pkg.allowScripts).filter(([name, allowed]) => allowed && existsSync(`node_modules/${name}/binding.gyp`));
    expect(native.map(([name]) => name)).toContain("hnswlib-node");
    const dockerfile = await Bun.file("deploy/Dockerfile").text();
    const deps = dockerfile.slice(dockerfile.indexOf("AS deps"), dockerfile.indexOf("FROM", dockerfile.indexOf("AS deps")));
    const base = /FROM (\S+) AS deps/.exec(dockerfile)![1]!;
    // A -slim base has no compiler: the install would fail building the addon.
    const toolchain = !base.endsWith("-slim") || (deps.includes("g++") && deps.includes("make") && deps.includes("python3"));
    expect(toolchain).toBe(true);
  });

  test("package-lock.json holds every optional platform package, so the image's `npm ci` accepts it", async () => {
    // npm ci refuses a lock that lacks any optional dependency of a locked package, even one for
    // another platform that would never be installed ("Missing: @biomejs/cli-darwin-arm64 from lock file").
    const lock = (await Bun.file("package-lock.json").json()) as { packages: Record<string, { optionalDependencies?: Record<string, string> }> };
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        // Resolved as Node does: beside the package (nested), else at the top.
        const nested = path === "" ? `node_modules/${name}` : `${path}/node_modules/${name}`;
        if (!(nested in lock.packages) && !(`node_modules/${name}` in lock.packages)) missing.push(`${name} (of ${path || "the root"})`);
      }
    }
    expect(missing).toEqual([]);
    expect(await Bun.file("deploy/Dockerfile").text()).toContain("npm ci");
  });

  test("the Dockerfile's base image is a Node.js release still maintained", async () => {
    // Node 20 reached its end of life on 2026-04-30; 22 on 2027-04-30, 24 on 2028-04-30.
    const endOfLife: Record<string, string> = { "22": "2027-04-30", "24": "2028-04-30", "26": "2029-04-30" };
    const dockerfile = await Bun.file("deploy/Dockerfile").text();
    const majors = [...dockerfile.matchAll(/^FROM node:(\d+)/gm)].map((m) => m[1]!);
    expect(majors.length).toBeGreaterThan(0);
    for (const major of majors) expect(endOfLife[major] ?? "unmaintained").not.toBe("unmaintained");
  });

  test("the Dockerfile's port and entry point match the server's", async () => {
    const dockerfile = await Bun.file("deploy/Dockerfile").text();
    const port = SETTINGS.find((s) => s.key === "port")!.default;
    expect(dockerfile).toContain(`EXPOSE ${port}`);
    expect(dockerfile).toContain('ENTRYPOINT ["node_modules/.bin/bun", "src/main.ts"]');
    expect(byKind("Service").spec.ports[0]!.port).toBe(Number(port));
    const grpcPort = SETTINGS.find((s) => s.key === "grpcPort")!.default;
    expect(dockerfile).toContain(`EXPOSE ${port} ${grpcPort}`);
    expect(byKind("Service").spec.ports.map((p) => p.port)).toContain(Number(grpcPort));
  });
});
