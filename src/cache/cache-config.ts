import type { FeedAddress } from "../feed/redis-feed.ts";
import { parseDurationMs } from "../registry/durations.ts";
import type { L2Address } from "./l2-store.ts";

/**
 * Where the change feed between pods runs, and why there: named by
 * `--cache-feed` / `cache.feed` ("setting"), the L2's Redis ("l2"), or the
 * topology's first shard by name ("shard", named `shard`). Absent: the in-process
 * feed (`--cache-feed off`, or the embedded store without an L2).
 */
export type FeedSettings =
  | { readonly where: FeedAddress; readonly source: "setting" | "l2" }
  | { readonly where: FeedAddress; readonly source: "shard"; readonly shard: string };

/** The cache tiers as configured; `undefined` tiers are off. */
export interface CacheSettings {
  readonly l1?: {
    readonly maxBytes: number;
    readonly ttlMs: number;
    readonly negativeTtlMs: number;
    readonly graceMs: number;
    /** Longest life of a fill while the change feed is not heard. */
    readonly feedDownTtlMs: number;
  };
  readonly l2?: {
    readonly where: L2Address;
    readonly ttlMs: number;
    readonly negativeTtlMs: number;
    readonly timeoutMs: number;
  };
  readonly feed?: FeedSettings;
}

/** What flags/env and a topology file's `cache:` section can say; unset fields fall through to the next source. */
export interface CacheInput {
  /** "on", "off" or "auto" (on with --topology, off with the embedded store). */
  readonly l1?: "on" | "off" | "auto";
  readonly l1MaxBytes?: number;
  readonly ttlMs?: number;
  readonly negativeTtlMs?: number;
  readonly graceMs?: number;
  readonly feedDownTtlMs?: number;
  /** `host:port`, or "off". */
  readonly l2?: string;
  readonly l2Sentinels?: readonly string[];
  readonly l2MasterName?: string;
  readonly l2TtlMs?: number;
  readonly l2TimeoutMs?: number;
  /** The change feed's Redis: `host:port`, or "off" (in-process). */
  readonly feed?: string;
  readonly feedSentinels?: readonly string[];
  readonly feedMasterName?: string;
}

/** Defaults from the system design: L1 100 MB / 60 s, L2 300 s, negative 5 s, grace 1 h, L2 calls bounded at 5 ms. */
export const CACHE_DEFAULTS = {
  l1MaxBytes: 100 * 1024 * 1024,
  ttlMs: 60_000,
  negativeTtlMs: 5_000,
  graceMs: 3_600_000,
  feedDownTtlMs: 1_000,
  l2TtlMs: 300_000,
  l2TimeoutMs: 5,
} as const;

/**
 * Settings from (highest first) flags/env, the topology file's `cache:`
 * section, then defaults. L1 defaults to on only over remote shards: the
 * embedded store already is process memory. The change feed runs where
 * `feed`/`feedSentinels` name (flags' whole, else the file's; "off": in
 * process), else on the L2's Redis, else on `shardFeed` (the topology's
 * first shard by name, which app.ts passes with Redis shards), else in process.
 */
export function resolveCacheSettings(explicit: CacheInput, file: CacheInput, remoteOrigin: boolean, shardFeed?: FeedSettings): CacheSettings {
  const pick = <K extends keyof CacheInput>(k: K): CacheInput[K] => explicit[k] ?? file[k];
  const l1Mode = pick("l1") ?? "auto";
  const l1On = l1Mode === "on" || (l1Mode === "auto" && remoteOrigin);
  const negativeTtlMs = pick("negativeTtlMs") ?? CACHE_DEFAULTS.negativeTtlMs;
  // Where L2 is comes whole from one source: flags naming it (an address or Sentinels) override the file's.
  // Picked field by field, the file's address beat the flags' Sentinels (the address is looked at first).
  const named = (c: CacheInput) => (c.l2 !== undefined && c.l2 !== "") || (c.l2Sentinels?.length ?? 0) > 0;
  const where0 = named(explicit) ? explicit : file;
  const l2Address = where0.l2;
  const sentinels = where0.l2Sentinels;
  if (l2Address !== undefined && l2Address !== "" && l2Address !== "off" && sentinels !== undefined && sentinels.length > 0) {
    throw new Error(`the L2 is named twice, as ${l2Address} and through Sentinels ${sentinels.join(",")}: give one (--cache-l2 or --cache-l2-sentinels; cache.l2 or cache.l2Sentinels)`);
  }
  let where: L2Address | undefined;
  if (l2Address === "off") where = undefined;
  else if (l2Address !== undefined && l2Address !== "") where = { address: l2Address };
  else if (sentinels !== undefined && sentinels.length > 0) where = { sentinels, masterName: pick("l2MasterName") ?? "quiver-l2" };
  const feed = resolveFeed(explicit, file, where, shardFeed);
  return {
    ...(l1On
      ? {
          l1: {
            maxBytes: pick("l1MaxBytes") ?? CACHE_DEFAULTS.l1MaxBytes,
            ttlMs: pick("ttlMs") ?? CACHE_DEFAULTS.ttlMs,
            negativeTtlMs,
            graceMs: pick("graceMs") ?? CACHE_DEFAULTS.graceMs,
            feedDownTtlMs: pick("feedDownTtlMs") ?? CACHE_DEFAULTS.feedDownTtlMs,
          },
        }
      : {}),
    ...(where
      ? { l2: { where, ttlMs: pick("l2TtlMs") ?? CACHE_DEFAULTS.l2TtlMs, negativeTtlMs, timeoutMs: pick("l2TimeoutMs") ?? CACHE_DEFAULTS.l2TimeoutMs } }
      : {}),
    ...(feed ? { feed } : {}),
  };
}

/** The feed's place (resolveCacheSettings); named like the L2, whole from one source. */
function resolveFeed(explicit: CacheInput, file: CacheInput, l2: L2Address | undefined, shardFeed: FeedSettings | undefined): FeedSettings | undefined {
  const named = (c: CacheInput) => (c.feed !== undefined && c.feed !== "") || (c.feedSentinels?.length ?? 0) > 0;
  const from = named(explicit) ? explicit : named(file) ? file : undefined;
  if (from === undefined) return l2 ? { where: l2, source: "l2" } : shardFeed;
  const address = from.feed;
  const sentinels = from.feedSentinels ?? [];
  if (address !== undefined && address !== "" && address !== "off" && sentinels.length > 0) {
    throw new Error(`the change feed is named twice, as ${address} and through Sentinels ${sentinels.join(",")}: give one (--cache-feed or --cache-feed-sentinels; cache.feed or cache.feedSentinels)`);
  }
  if (address === "off") return undefined;
  if (address !== undefined && address !== "") return { where: { address }, source: "setting" };
  return { where: { sentinels, masterName: explicit.feedMasterName ?? file.feedMasterName ?? "quiver-feed" }, source: "setting" };
}

const ADDRESS = /^[A-Za-z0-9_.-]+:\d{1,5}$/;
const FIELDS = ["l1", "l1MaxBytes", "ttl", "negativeTtl", "grace", "feedDownTtl", "l2", "l2Sentinels", "l2MasterName", "l2Ttl", "l2Timeout", "feed", "feedSentinels", "feedMasterName"];

/** Validates a topology file's `cache:` section; every problem goes to `fail` with its path. */
export function parseCacheSection(raw: unknown, fail: (path: string, message: string) => void): CacheInput {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    fail("cache", "expected a mapping");
    return {};
  }
  const r = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(r)) if (!FIELDS.includes(key)) fail(`cache.${key}`, `unknown field (expected one of ${FIELDS.join(", ")})`);
  const dur = (key: string, target: string, allowZero: boolean) => {
    if (r[key] === undefined) return;
    const ms = parseDurationMs(r[key]);
    if (ms === undefined || (!allowZero && ms <= 0)) fail(`cache.${key}`, `expected a duration like "5ms", "60s" or "1h", got ${JSON.stringify(r[key])}`);
    else out[target] = ms;
  };
  if (r["l1"] !== undefined) {
    if (r["l1"] === true || r["l1"] === "on") out["l1"] = "on";
    else if (r["l1"] === false || r["l1"] === "off") out["l1"] = "off";
    else if (r["l1"] === "auto") out["l1"] = "auto";
    else fail("cache.l1", `expected true, false or "auto", got ${JSON.stringify(r["l1"])}`);
  }
  if (r["l1MaxBytes"] !== undefined) {
    const n = r["l1MaxBytes"];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1024) fail("cache.l1MaxBytes", `expected an integer of at least 1024, got ${JSON.stringify(n)}`);
    else out["l1MaxBytes"] = n;
  }
  dur("ttl", "ttlMs", false);
  dur("negativeTtl", "negativeTtlMs", false);
  dur("grace", "graceMs", true);
  dur("feedDownTtl", "feedDownTtlMs", false);
  dur("l2Ttl", "l2TtlMs", false);
  dur("l2Timeout", "l2TimeoutMs", false);
  if (r["l2"] !== undefined) {
    if (r["l2"] === false || r["l2"] === "off") out["l2"] = "off";
    else if (typeof r["l2"] === "string" && ADDRESS.test(r["l2"])) out["l2"] = r["l2"];
    else fail("cache.l2", `expected host:port or false, got ${JSON.stringify(r["l2"])}`);
  }
  if (r["l2Sentinels"] !== undefined) {
    const s = r["l2Sentinels"];
    if (!Array.isArray(s) || s.length === 0 || !s.every((a) => typeof a === "string" && ADDRESS.test(a))) fail("cache.l2Sentinels", "expected a non-empty list of host:port");
    else out["l2Sentinels"] = s;
  }
  if (r["l2MasterName"] !== undefined) {
    if (typeof r["l2MasterName"] !== "string" || r["l2MasterName"] === "") fail("cache.l2MasterName", "expected a name");
    else out["l2MasterName"] = r["l2MasterName"];
  }
  if (r["feed"] !== undefined) {
    if (r["feed"] === false || r["feed"] === "off") out["feed"] = "off";
    else if (typeof r["feed"] === "string" && ADDRESS.test(r["feed"])) out["feed"] = r["feed"];
    else fail("cache.feed", `expected host:port or false (the in-process feed), got ${JSON.stringify(r["feed"])}`);
  }
  if (r["feedSentinels"] !== undefined) {
    const s = r["feedSentinels"];
    if (!Array.isArray(s) || s.length === 0 || !s.every((a) => typeof a === "string" && ADDRESS.test(a))) fail("cache.feedSentinels", "expected a non-empty list of host:port");
    else out["feedSentinels"] = s;
  }
  if (r["feedMasterName"] !== undefined) {
    if (typeof r["feedMasterName"] !== "string" || r["feedMasterName"] === "") fail("cache.feedMasterName", "expected a name");
    else out["feedMasterName"] = r["feedMasterName"];
  }
  if (out["feed"] !== undefined && out["feed"] !== "off" && out["feedSentinels"] !== undefined) fail("cache.feed", "the feed is also named by cache.feedSentinels: give one");
  return out as CacheInput;
}

/** Parses a `host:port` or "off" flag value (used by src/config). */
export function isL2Setting(raw: string): boolean {
  return raw === "" || raw === "off" || ADDRESS.test(raw);
}
