import { relative } from "node:path";
import { parseArgs } from "node:util";
import { clusterDown, clusterUp } from "./cluster.ts";
import { clusterAdd } from "./cluster-add.ts";
import { readState } from "./cluster-state.ts";
import { clusterStatus, formatStatus } from "./cluster-status.ts";
import { migrationUrl, watchMigration } from "./migration-watch.ts";

/**
 * `npm run shards:up -- --shards 3 --replicas 2 [--l2]` | `shards:down` | `shards:status` |
 * `shards:add` | `shards:migration -- --url <server>` (base URL or the full /admin/topology/migration route).
 * Manages a local loopback cluster of redis-server processes and Sentinels.
 */

const here = (path: string): string => new URL(path, import.meta.url).pathname;

const USAGE =
  "usage: bun shards/cli.ts up [--shards 3] [--replicas 2] [--sentinels 3] [--l2] [--no-aof] | add [--replicas R] | status [--json] | migration [--url U] [--token T] | down\n" +
  "       (also: --run-dir DIR, --topology FILE, --down-after-ms N, --failover-timeout-ms N, --l2-maxmemory SIZE)";

// A mistyped flag (or --help) printed a TypeError with a source excerpt instead of the usage.
let parsed: ReturnType<typeof parseCommandLine>;
try {
  parsed = parseCommandLine();
} catch (error) {
  console.error(`${error instanceof Error ? error.message : error}\n${USAGE}`);
  process.exit(2);
}
const { positionals, values } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function parseCommandLine() {
  return parseArgs({
    args: Bun.argv.slice(2),
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h", default: false },
      shards: { type: "string", default: "3" },
      replicas: { type: "string", default: "2" },
      sentinels: { type: "string", default: "3" },
      "run-dir": { type: "string", default: here("./.run") },
      topology: { type: "string", default: here("./local.yaml") },
      "down-after-ms": { type: "string", default: "3000" },
      "failover-timeout-ms": { type: "string", default: "10000" },
      "no-aof": { type: "boolean", default: false },
      l2: { type: "boolean", default: false },
      "l2-maxmemory": { type: "string", default: "256mb" },
      json: { type: "boolean", default: false },
      url: { type: "string", default: "http://127.0.0.1:6566/admin/topology/migration" },
      token: { type: "string", default: process.env["QUIVER_ADMIN_TOKEN"] ?? "" },
    },
    tokens: true,
  });
}

/** Options given on the command line (not defaults): `add --replicas=2` was missed by a search for "--replicas". */
const given = new Set(parsed.tokens.flatMap((t) => (t.kind === "option" ? [t.name] : [])));

function count(flag: string, min: number, max: number): number {
  const n = Number(values[flag as keyof typeof values]);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${flag}: expected an integer from ${min} to ${max}, got ${values[flag as keyof typeof values]}`);
    process.exit(2);
  }
  return n;
}

const runDir = values["run-dir"];
const command = positionals[0];
try {
  if (command === "up") {
    const started = performance.now();
    const state = await clusterUp({
      shards: count("shards", 1, 32),
      replicas: count("replicas", 0, 8),
      sentinels: count("sentinels", 1, 9),
      runDir,
      topologyPath: values.topology,
      downAfterMs: count("down-after-ms", 100, 600_000),
      failoverTimeoutMs: count("failover-timeout-ms", 500, 3_600_000),
      appendOnly: !values["no-aof"],
      ...(values.l2 ? { l2MaxMemory: values["l2-maxmemory"] } : {}),
      log: (line) => console.log(line),
    });
    const processes = state.sentinels.length + state.shards.reduce((n, s) => n + s.nodes.length, 0) + (state.l2 ? 1 : 0);
    console.log(`cluster up: ${state.shards.length} shard(s), ${processes} processes in ${Math.round(performance.now() - started)} ms`);
    console.log(`serve it with: npm start -- --topology ${relative(process.cwd(), values.topology)}`);
  } else if (command === "add") {
    const replicas = given.has("replicas") ? count("replicas", 0, 8) : undefined;
    await clusterAdd(runDir, replicas, (line) => console.log(line));
    console.log("reload the server's topology to move keys onto it: curl -X POST http://127.0.0.1:6566/admin/topology/reload");
  } else if (command === "migration") {
    // Accept the server's base URL as well as the full route; a bad one is a usage error (2), naming --url.
    let url: string;
    try {
      url = migrationUrl(values.url);
    } catch (error) {
      console.error((error as Error).message);
      process.exit(2);
    }
    const last = await watchMigration({ url, ...(values.token ? { token: values.token } : {}) });
    if (last?.state === "failed") process.exit(1);
  } else if (command === "down") {
    const stopped = await clusterDown(runDir, values.topology, (line) => console.log(line));
    console.log(`stopped ${stopped} process(es)`);
  } else if (command === "status") {
    const state = readState(runDir);
    if (!state) {
      console.log("no cluster running (start one with `npm run shards:up`)");
      process.exit(1);
    }
    const status = await clusterStatus(state);
    console.log(values.json ? JSON.stringify(status, null, 2) : formatStatus(status));
  } else {
    console.error(USAGE);
    process.exit(2);
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
