import { type Issue, invalidAll, invalidArgument, QuiverError } from "../errors/index.ts";
import { type CacheInput, parseCacheSection } from "../cache/cache-config.ts";
import { type ReadOptions, readOffThread, readTextFile, type TextReader } from "../runtime/index.ts";
import { parseHostPort } from "./address.ts";
import { RESILIENCE_KEYS, type ResilienceSettings } from "../resilience/settings.ts";
import type { ReplicaSetOptions } from "./replica-set.ts";

/** Per-shard behaviour a topology file may set (file-wide under `defaults`, or on one shard); documented on ReplicaSetOptions. */
export type ShardTuning = Pick<ReplicaSetOptions, "readFrom" | "writeAcks" | "ackTimeoutMs" | "attemptTimeoutMs" | "failoverWindowMs" | "probeIntervalMs"> &
  Partial<ResilienceSettings>;

interface ShardBase {
  readonly name: string;
  /** Relative share on the ring (vnode weight); default 1. */
  readonly weight: number;
  readonly tuning: ShardTuning;
}

/** A shard found through Sentinel (follows failovers). */
export interface SentinelShardSpec extends ShardBase {
  readonly kind: "sentinel";
  readonly masterName: string;
  readonly sentinels: readonly string[];
}

/** A shard at fixed addresses. */
export interface DirectShardSpec extends ShardBase {
  readonly kind: "direct";
  readonly primary: string;
  readonly replicas: readonly string[];
}

export type ShardSpec = SentinelShardSpec | DirectShardSpec;

export interface Topology {
  readonly shards: readonly ShardSpec[];
  readonly defaults: ShardTuning;
  /** The `cache:` section (L1/L2 settings; flags and env override it). */
  readonly cache: CacheInput;
}

const TUNING_KEYS: string[] = ["readFrom", "writeAcks", "ackTimeoutMs", "attemptTimeoutMs", "failoverWindowMs", "probeIntervalMs", ...RESILIENCE_KEYS];
/** Settings where 0 is meaningful (no retries, no pause, no queue). */
const ZERO_OK = new Set(["writeAcks", "readRetries", "readRetryDelayMs", "writeRetries", "bulkheadQueue"]);
const SHARD_KEYS = new Set(["name", "weight", "masterName", "sentinels", "primary", "replicas", ...TUNING_KEYS]);
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

/** read-topology.ts's reader, run in a worker: the YAML parser never loads in the server's own heap. */
const TOPOLOGY_READER: TextReader = { module: new URL("./read-topology.ts", import.meta.url).href, name: "readTopologyText" };

/**
 * Reads and validates a topology file (YAML, or JSON which YAML also reads).
 * Throws naming the file and every problem. The text is parsed in a worker
 * (read-topology.ts), its meaning checked here.
 */
export async function loadTopology(path: string, options: ReadOptions = {}): Promise<Topology> {
  const text = await readTextFile(path).catch((e: unknown) => {
    // A directory in its place, no read permission, ...: the operator's file to fix (a reload answered 500 "internal error").
    throw invalidArgument("invalid_topology", `topology file not readable: ${path}: ${(e as Error).message}`, { path: "(file)" });
  });
  if (text === undefined) throw invalidArgument("invalid_topology", `topology file not found: ${path}`, { path: "(file)" });
  const data = await readOffThread<unknown>(TOPOLOGY_READER, text, path, options);
  try {
    return parseTopology(data);
  } catch (error) {
    if (!(error instanceof QuiverError)) throw error;
    throw new QuiverError(error.kind, error.code, `${path}: ${error.message}`, { path: error.path, issues: error.issues });
  }
}

/** Validates parsed topology data; every problem is reported with its path (`shards[1].primary: ...`). */
export function parseTopology(data: unknown): Topology {
  const issues: Issue[] = [];
  const fail = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  if (!isRecord(data)) {
    fail("(root)", "expected a mapping with a `shards` list");
    throw invalidAll("invalid_topology", issues);
  }
  for (const key of Object.keys(data)) if (key !== "shards" && key !== "defaults" && key !== "cache") fail(key, "unknown field (expected shards, defaults, cache)");
  const cache = parseCacheSection(data["cache"], fail);
  const defaults = isRecord(data["defaults"]) ? tuning(data["defaults"], "defaults", fail, true) : {};
  if (data["defaults"] !== undefined && !isRecord(data["defaults"])) fail("defaults", "expected a mapping");
  const shards: ShardSpec[] = [];
  if (!Array.isArray(data["shards"]) || data["shards"].length === 0) fail("shards", "expected a non-empty list of shards");
  else {
    const names = new Set<string>();
    data["shards"].forEach((raw: unknown, i: number) => {
      const spec = shard(raw, `shards[${i}]`, fail);
      if (!spec) return;
      if (names.has(spec.name)) fail(`shards[${i}].name`, `duplicate shard name "${spec.name}"`);
      names.add(spec.name);
      shards.push(spec);
    });
  }
  if (issues.length > 0) throw invalidAll("invalid_topology", issues);
  return { shards, defaults, cache };
}

function shard(raw: unknown, at: string, fail: (path: string, message: string) => void): ShardSpec | undefined {
  if (!isRecord(raw)) {
    fail(at, "expected a mapping");
    return undefined;
  }
  const before = { count: 0 };
  const note = (path: string, message: string): void => {
    before.count++;
    fail(path, message);
  };
  for (const key of Object.keys(raw)) if (!SHARD_KEYS.has(key)) note(`${at}.${key}`, "unknown field");
  const name = raw["name"];
  if (typeof name !== "string" || !NAME.test(name)) note(`${at}.name`, `expected a name of letters, digits, "_", "." or "-", got ${show(name)}`);
  const weight = raw["weight"] ?? 1;
  if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0) note(`${at}.weight`, `expected a positive number, got ${show(weight)}`);
  const tune = tuning(raw, at, note, false);
  const hasSentinels = raw["sentinels"] !== undefined;
  const hasPrimary = raw["primary"] !== undefined;
  if (hasSentinels === hasPrimary) {
    note(at, "give either `sentinels` (+ `masterName`) or `primary` (+ `replicas`)");
    return undefined;
  }
  if (hasSentinels) {
    const sentinels = addresses(raw["sentinels"], `${at}.sentinels`, note, false);
    const masterName = raw["masterName"] ?? name;
    if (typeof masterName !== "string" || masterName.length === 0) note(`${at}.masterName`, `expected a string, got ${show(masterName)}`);
    if (raw["replicas"] !== undefined) note(`${at}.replicas`, "replicas are discovered through Sentinel; remove this field");
    if (before.count > 0) return undefined;
    return { kind: "sentinel", name: name as string, weight: weight as number, tuning: tune, masterName: masterName as string, sentinels };
  }
  const primary = raw["primary"];
  if (typeof primary !== "string" || !parseHostPort(primary)) note(`${at}.primary`, `expected host:port, got ${show(primary)}`);
  const replicas = raw["replicas"] === undefined ? [] : addresses(raw["replicas"], `${at}.replicas`, note, true);
  if (raw["masterName"] !== undefined) note(`${at}.masterName`, "only used with `sentinels`");
  if (replicas.includes(primary as string)) note(`${at}.replicas`, `the primary ${primary} is listed as a replica`);
  if (before.count > 0) return undefined;
  return { kind: "direct", name: name as string, weight: weight as number, tuning: tune, primary: primary as string, replicas };
}

function addresses(raw: unknown, at: string, fail: (path: string, message: string) => void, emptyOk: boolean): string[] {
  if (!Array.isArray(raw) || (!emptyOk && raw.length === 0)) {
    fail(at, `expected a ${emptyOk ? "" : "non-empty "}list of host:port`);
    return [];
  }
  const out: string[] = [];
  raw.forEach((a: unknown, i: number) => {
    if (typeof a !== "string" || !parseHostPort(a)) fail(`${at}[${i}]`, `expected host:port, got ${show(a)}`);
    else if (out.includes(a)) fail(`${at}[${i}]`, `duplicate address ${a}`);
    else out.push(a);
  });
  return out;
}

function tuning(raw: Record<string, unknown>, at: string, fail: (path: string, message: string) => void, strict: boolean): ShardTuning {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const path = `${at}.${key}`;
    if (!TUNING_KEYS.includes(key)) {
      if (strict) fail(path, `unknown field (expected one of ${TUNING_KEYS.join(", ")})`);
      continue;
    }
    if (key === "readFrom") {
      if (value !== "primary" && value !== "replica" && value !== "nearest") fail(path, `expected one of primary, replica, nearest, got ${show(value)}`);
    } else if (typeof value !== "number" || !Number.isInteger(value) || value < (ZERO_OK.has(key) ? 0 : 1)) {
      fail(path, `expected an integer ${ZERO_OK.has(key) ? ">= 0" : "> 0"}, got ${show(value)}`);
    }
    out[key] = value;
  }
  return out as ShardTuning;
}
