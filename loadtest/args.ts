import { parseArgs } from "node:util";
import type { LoadMode } from "./engine/run-load.ts";

/** Everything the CLI accepts, validated and in base units (ms, req/s). */
export interface CliOptions {
  readonly scenario: string;
  readonly target: URL;
  readonly mode: LoadMode;
  readonly rate: number;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly timeoutMs: number;
  /** Collect the generator's own young generation this often during a run (0: the runtime's schedule). */
  readonly gcPaceMs: number;
  readonly keys: string;
  readonly entities: number;
  readonly seed: string;
  readonly batch: number | undefined;
  readonly writeRatio: number;
  /** The server's admin token: writes (push, mixed) send `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
  readonly view: string;
  readonly features: readonly string[] | undefined;
  readonly path: string;
  readonly maxRequests: number;
  readonly json: string | undefined;
  readonly hgrm: string | undefined;
  readonly label: string | undefined;
  readonly progress: boolean;
  readonly quiet: boolean;
  readonly findMax: boolean;
  readonly sloMs: number;
  readonly maxErrorRate: number;
  readonly startRate: number;
  readonly stepFactor: number;
  readonly stepDurationMs: number;
  readonly maxRate: number;
  readonly refine: number;
  readonly retries: number;
  readonly help: boolean;
}

export const USAGE = `Usage: npm run loadtest -- [options]

  --scenario NAME        lookup | batch-lookup | lookup-msgpack | feast | push | mixed | get | match
                         | grpc-lookup | grpc-feast (default lookup; grpc-*: --target is the gRPC port)
  --target URL           server base URL, no path (default http://127.0.0.1:6566)
  --mode open|closed     open: constant rate, latency from intended send time (default);
                         closed: --connections each send back to back (max throughput)
  --rate N               requests/s in open mode (default 1000)
  --connections N        connections (default 64)
  --duration D           measured time, e.g. 30s, 500ms, 2m (default 10s)
  --warmup D             load before measuring, not recorded (default 0s)
  --timeout D            per-request timeout (default 2s)
  --gc-pace D            collect the generator's own young generation this often while it
                         runs, so its pauses stay short and its send lag low (default 10ms;
                         0 = the runtime's own schedule; Bun only)
  --keys SPEC            uniform | zipf | zipf:S | zipf:S:ordered (default uniform)
  --entities N           key space size (default 10000, the demo data's)
  --seed S               PRNG seed: same seed, same key sequence (default 1)
  --batch N              entity rows per lookup / rows per push (scenario default)
  --write-ratio R        writes share in "mixed" (default 0.1)
  --token T              the server's admin token: writes send Authorization: Bearer T
  --view NAME            feature view (default driver_hourly_stats)
  --features a,b         subset of the view's features (default all)
  --path P               path for "get" (default /healthz)
  --max-requests N       hard bound on requests sent (default 100000000)
  --find-max             step the open-loop rate up until p99 > --slo-ms or errors > --max-error-rate
    --slo-ms N           p99 bound (default 8)
    --max-error-rate R   (default 0.001)
    --start-rate N       first step (default 1000)     --step-factor F  (default 1.5)
    --step-duration D    per step (default 5s)          --max-rate N     (default 1000000)
    --refine N           bisection steps after the first failure (default 2)
    --retries N          reruns of a failing step before it counts (default 1)
  --json FILE            write the result as JSON
  --hgrm FILE            write the HdrHistogram percentile distribution (ms)
  --label TEXT           name of the run in reports
  --progress             live progress line on stderr even when not a TTY
  --quiet                no summary on stdout
`;

export function parseCli(argv: readonly string[]): CliOptions {
  const { values: v, tokens } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    tokens: true,
    options: {
      scenario: { type: "string", default: "lookup" },
      target: { type: "string", default: "http://127.0.0.1:6566" },
      mode: { type: "string", default: "open" },
      rate: { type: "string", default: "1000" },
      connections: { type: "string", default: "64" },
      duration: { type: "string", default: "10s" },
      warmup: { type: "string", default: "0s" },
      timeout: { type: "string", default: "2s" },
      "gc-pace": { type: "string", default: "10ms" },
      keys: { type: "string", default: "uniform" },
      entities: { type: "string", default: "10000" },
      seed: { type: "string", default: "1" },
      batch: { type: "string" },
      "write-ratio": { type: "string", default: "0.1" },
      token: { type: "string" },
      view: { type: "string", default: "driver_hourly_stats" },
      features: { type: "string" },
      path: { type: "string", default: "/healthz" },
      "max-requests": { type: "string", default: "100000000" },
      json: { type: "string" },
      hgrm: { type: "string" },
      label: { type: "string" },
      progress: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      "find-max": { type: "boolean", default: false },
      "slo-ms": { type: "string", default: "8" },
      "max-error-rate": { type: "string", default: "0.001" },
      "start-rate": { type: "string", default: "1000" },
      "step-factor": { type: "string", default: "1.5" },
      "step-duration": { type: "string", default: "5s" },
      "max-rate": { type: "string", default: "1000000" },
      refine: { type: "string", default: "2" },
      retries: { type: "string", default: "1" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const mode = v.mode;
  if (mode !== "open" && mode !== "closed") throw new Error(`--mode: expected open or closed, got "${mode}"`);
  let target: URL;
  try {
    target = new URL(v.target);
  } catch {
    throw new Error(`--target: not a URL: "${v.target}"`);
  }
  if (target.protocol !== "http:") throw new Error(`--target: only http:// is supported, got ${target.protocol}`);
  // Requests go to the scenario's paths at the server's root: a path here (a server behind a prefix) was dropped silently.
  if (target.pathname !== "/" || target.search !== "" || target.hash !== "") {
    throw new Error(`--target: a base URL without a path or query (requests go to /v1/lookup and the like at its root), got "${v.target}"`);
  }
  // Whitespace or a control character would break the request line (a CR LF would add headers).
  if (!/^\/[\x21-\x7e]*$/.test(v.path)) throw new Error(`--path: expected a path starting with "/" without spaces or control characters, got ${JSON.stringify(v.path)}`);
  refuseInapplicable(new Set(tokens.flatMap((t) => (t.kind === "option" ? [t.name] : []))), v.scenario, mode, v["find-max"]);
  return {
    scenario: v.scenario,
    target,
    mode,
    rate: positive("--rate", v.rate),
    connections: positiveInt("--connections", v.connections),
    durationMs: parseDuration("--duration", v.duration),
    warmupMs: parseDuration("--warmup", v.warmup, true),
    timeoutMs: parseDuration("--timeout", v.timeout),
    gcPaceMs: parseDuration("--gc-pace", v["gc-pace"], true),
    keys: v.keys,
    entities: positiveInt("--entities", v.entities),
    seed: v.seed,
    batch: v.batch === undefined ? undefined : positiveInt("--batch", v.batch),
    writeRatio: fraction("--write-ratio", v["write-ratio"]),
    token: v.token,
    view: v.view,
    features: v.features?.split(",").filter((s) => s.length > 0),
    path: v.path,
    maxRequests: positiveInt("--max-requests", v["max-requests"]),
    json: v.json,
    hgrm: v.hgrm,
    label: v.label,
    progress: v.progress,
    quiet: v.quiet,
    findMax: v["find-max"],
    sloMs: positive("--slo-ms", v["slo-ms"]),
    maxErrorRate: fraction("--max-error-rate", v["max-error-rate"]),
    startRate: positive("--start-rate", v["start-rate"]),
    stepFactor: positive("--step-factor", v["step-factor"]),
    stepDurationMs: parseDuration("--step-duration", v["step-duration"]),
    maxRate: positive("--max-rate", v["max-rate"]),
    refine: nonNegativeInt("--refine", v.refine),
    retries: nonNegativeInt("--retries", v.retries),
    help: v.help,
  };
}

/** Options that only some runs use. */
const FIND_MAX_ONLY = ["slo-ms", "max-error-rate", "start-rate", "step-factor", "step-duration", "max-rate", "refine", "retries"];

/**
 * Refuses an option the run would ignore (as the server refuses its own,
 * src/config/inapplicable.ts): `--mode closed --rate 5000` ran closed loop at
 * whatever rate the server allowed, `--find-max --mode closed` ran open-loop
 * steps, `--path` with a lookup scenario was ignored; each exited 0.
 */
function refuseInapplicable(given: ReadonlySet<string>, scenario: string, mode: LoadMode, findMax: boolean): void {
  const refuse = (option: string, why: string) => {
    throw new Error(`--${option}: ${why}; leave it out`);
  };
  if (findMax) {
    if (given.has("mode")) refuse("mode", "--find-max always runs open-loop steps");
    if (given.has("rate")) refuse("rate", "--find-max sets each step's rate (--start-rate, --step-factor, --max-rate)");
    if (given.has("duration")) refuse("duration", "--find-max runs each step for --step-duration");
  } else {
    for (const option of FIND_MAX_ONLY) if (given.has(option)) refuse(option, "it is a --find-max setting, and this run is not one");
    if (mode === "closed" && given.has("rate")) refuse("rate", "a closed-loop run sends as fast as --connections allow, at no set rate");
  }
  if (given.has("path") && scenario !== "get") refuse("path", `only the "get" scenario requests a path of your choice (this is "${scenario}")`);
  if (given.has("write-ratio") && scenario !== "mixed") refuse("write-ratio", `only the "mixed" scenario mixes writes in (this is "${scenario}")`);
}

/** "30s", "500ms", "2m", "1h" or a bare number of seconds. */
export function parseDuration(flag: string, s: string, allowZero = false): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (m === null) throw new Error(`${flag}: expected a duration like 30s, 500ms, 2m; got "${s}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  const ms = Number(m[1]) * unit;
  if (ms === 0 && !allowZero) throw new Error(`${flag}: must be more than 0`);
  return ms;
}

export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function positive(flag: string, s: string): number {
  const n = Number(s);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${flag}: expected a positive number, got "${s}"`);
  return n;
}

function positiveInt(flag: string, s: string): number {
  const n = positive(flag, s);
  if (!Number.isInteger(n)) throw new Error(`${flag}: expected an integer, got "${s}"`);
  return n;
}

function nonNegativeInt(flag: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: expected an integer >= 0, got "${s}"`);
  return n;
}

function fraction(flag: string, s: string): number {
  const n = Number(s);
  if (!(n >= 0 && n <= 1)) throw new Error(`${flag}: expected a number in 0..1, got "${s}"`);
  return n;
}
