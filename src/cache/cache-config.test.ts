import { describe, expect, test } from "bun:test";
import { loadConfig } from "../config/config.ts";
import { parseTopology } from "../shard/topology.ts";
import { CACHE_DEFAULTS, resolveCacheSettings } from "./cache-config.ts";

const shards = [{ name: "a", primary: "127.0.0.1:7001" }];

describe("cache settings", () => {
  test("caches are off over the embedded store and L1 is on over shards, by default", () => {
    expect(resolveCacheSettings({}, {}, false)).toEqual({});
    expect(resolveCacheSettings({}, {}, true)).toEqual({
      l1: { maxBytes: CACHE_DEFAULTS.l1MaxBytes, ttlMs: 60_000, negativeTtlMs: 5_000, graceMs: 3_600_000, feedDownTtlMs: 1_000 },
    });
  });

  test("the topology file's cache section configures both tiers; flags and env override it", () => {
    const topology = parseTopology({ shards, cache: { l1MaxBytes: 2048, ttl: "30s", grace: "10m", feedDownTtl: "250ms", l2: "127.0.0.1:7100", l2Timeout: "20ms", l2Ttl: "2m" } });
    const fromFile = resolveCacheSettings({}, topology.cache, true);
    expect(fromFile).toEqual({
      l1: { maxBytes: 2048, ttlMs: 30_000, negativeTtlMs: 5_000, graceMs: 600_000, feedDownTtlMs: 250 },
      l2: { where: { address: "127.0.0.1:7100" }, ttlMs: 120_000, negativeTtlMs: 5_000, timeoutMs: 20 },
      feed: { where: { address: "127.0.0.1:7100" }, source: "l2" },
    });
    const config = loadConfig(["--cache-l2", "off", "--cache-ttl", "5s"], { QUIVER_CACHE_L1: "off" });
    const explicit = {
      ...(config.explicit.has("cacheL1") ? { l1: config.cacheL1 } : {}),
      ...(config.explicit.has("cacheL2") ? { l2: config.cacheL2 } : {}),
    };
    expect(resolveCacheSettings(explicit, topology.cache, true)).toEqual({});
  });

  test("L2 through Sentinel", () => {
    const t = parseTopology({ shards, cache: { l2Sentinels: ["127.0.0.1:26379", "127.0.0.1:26380"], l2MasterName: "edge-l2" } });
    expect(resolveCacheSettings({}, t.cache, true).l2?.where).toEqual({ sentinels: ["127.0.0.1:26379", "127.0.0.1:26380"], masterName: "edge-l2" });
  });

  test("a bad cache section names every field", () => {
    expect(() => parseTopology({ shards, cache: { l1: "maybe", ttl: "soon", l2: "nowhere", l1MaxBytes: 5, colour: "red" } })).toThrow(
      /cache.colour: unknown field.*cache.l1: expected true, false or "auto".*cache.l1MaxBytes: expected an integer of at least 1024.*cache.ttl: expected a duration.*cache.l2: expected host:port/,
    );
  });

  test("bad flags name the setting", () => {
    expect(() => loadConfig(["--cache-l2", "nowhere"], {})).toThrow('--cache-l2: expected host:port or off, got "nowhere"');
    expect(() => loadConfig(["--cache-ttl", "0s"], {})).toThrow("--cache-ttl: must be greater than zero");
    expect(loadConfig(["--cache-l2-timeout", "5ms"], {}).cacheL2TimeoutMs).toBe(5);
  });

  test("flags naming the L2 (Sentinels or an address) override the file's L2 whole; naming it twice is refused", () => {
    const file = parseTopology({ shards, cache: { l2: "127.0.0.1:7100" } }).cache;
    expect(resolveCacheSettings({ l2Sentinels: ["127.0.0.1:26379"] }, file, true).l2?.where).toEqual({ sentinels: ["127.0.0.1:26379"], masterName: "quiver-l2" });
    expect(resolveCacheSettings({}, file, true).l2?.where).toEqual({ address: "127.0.0.1:7100" });
    expect(() => resolveCacheSettings({ l2: "127.0.0.1:7101", l2Sentinels: ["127.0.0.1:26379"] }, {}, true)).toThrow("the L2 is named twice");
  });

  describe("where the change feed runs", () => {
    const onShard = { where: { address: "127.0.0.1:7001" }, source: "shard", shard: "a" } as const;
    const explicitOf = (argv: string[], env: Record<string, string> = {}) => {
      const c = loadConfig(argv, env);
      const sentinels = c.cacheFeedSentinels.split(",").filter((x) => x !== "");
      return {
        ...(c.explicit.has("cacheFeed") ? { feed: c.cacheFeed } : {}),
        ...(sentinels.length > 0 ? { feedSentinels: sentinels } : {}),
        ...(c.explicit.has("cacheFeedMaster") ? { feedMasterName: c.cacheFeedMaster } : {}),
        ...(c.explicit.has("cacheL2") ? { l2: c.cacheL2 } : {}),
      };
    };

    test("with Redis shards and no L2 it runs on the shard it is given (the topology's first); with an L2, on the L2; with neither, in process", () => {
      expect(resolveCacheSettings({}, {}, true, onShard).feed).toEqual(onShard);
      expect(resolveCacheSettings({}, { l2: "127.0.0.1:7100" }, true, onShard).feed).toEqual({ where: { address: "127.0.0.1:7100" }, source: "l2" });
      expect(resolveCacheSettings({ l2: "off" }, { l2: "127.0.0.1:7100" }, true, onShard).feed).toEqual(onShard);
      expect(resolveCacheSettings({}, {}, false).feed).toBeUndefined();
    });

    test("--cache-feed / QUIVER_CACHE_FEED names it over the L2 and the shard; off keeps it in process", () => {
      const l2File = { l2: "127.0.0.1:7100" };
      expect(resolveCacheSettings(explicitOf(["--cache-feed", "127.0.0.1:7200"]), l2File, true, onShard).feed).toEqual({ where: { address: "127.0.0.1:7200" }, source: "setting" });
      expect(resolveCacheSettings(explicitOf([], { QUIVER_CACHE_FEED: "127.0.0.1:7201" }), {}, true, onShard).feed).toEqual({ where: { address: "127.0.0.1:7201" }, source: "setting" });
      const off = resolveCacheSettings(explicitOf(["--cache-feed", "off"]), l2File, true, onShard);
      expect(off.feed).toBeUndefined();
      expect(off.l2?.where).toEqual({ address: "127.0.0.1:7100" });
      expect(resolveCacheSettings(explicitOf(["--cache-feed", "off"]), {}, true, onShard)).toEqual(resolveCacheSettings({}, {}, true));
    });

    test("the topology file's cache.feed / cache.feedSentinels + feedMasterName name it; flags naming it override the file's whole", () => {
      const file = parseTopology({ shards, cache: { feedSentinels: ["127.0.0.1:26379", "127.0.0.1:26380"], feedMasterName: "edge-feed" } }).cache;
      expect(resolveCacheSettings({}, file, true, onShard).feed).toEqual({ where: { sentinels: ["127.0.0.1:26379", "127.0.0.1:26380"], masterName: "edge-feed" }, source: "setting" });
      expect(resolveCacheSettings(explicitOf(["--cache-feed", "127.0.0.1:7200"]), file, true, onShard).feed?.where).toEqual({ address: "127.0.0.1:7200" });
      expect(resolveCacheSettings(explicitOf(["--cache-feed-sentinels", "127.0.0.1:26381", "--cache-feed-master", "f2"]), parseTopology({ shards, cache: { feed: "127.0.0.1:7300" } }).cache, true).feed?.where).toEqual({
        sentinels: ["127.0.0.1:26381"],
        masterName: "f2",
      });
      expect(resolveCacheSettings(explicitOf(["--cache-feed-sentinels", "127.0.0.1:26381"]), {}, true).feed?.where).toEqual({ sentinels: ["127.0.0.1:26381"], masterName: "quiver-feed" });
      expect(resolveCacheSettings({}, parseTopology({ shards, cache: { feed: false } }).cache, true, onShard).feed).toBeUndefined();
      expect(resolveCacheSettings({}, parseTopology({ shards, cache: { feed: "off", l2: "127.0.0.1:7100" } }).cache, true, onShard).feed).toBeUndefined();
    });

    test("bad feed settings name the field or the flag", () => {
      expect(() => parseTopology({ shards, cache: { feed: "nowhere", feedSentinels: [], feedMasterName: "" } })).toThrow(
        /cache.feed: expected host:port or false.*cache.feedSentinels: expected a non-empty list of host:port.*cache.feedMasterName: expected a name/,
      );
      expect(() => parseTopology({ shards, cache: { feed: "127.0.0.1:7200", feedSentinels: ["127.0.0.1:26379"] } })).toThrow(/cache.feed: the feed is also named by cache.feedSentinels/);
      expect(() => loadConfig(["--cache-feed", "nowhere"], {})).toThrow('--cache-feed: expected host:port or off, got "nowhere"');
      expect(() => loadConfig([], { QUIVER_CACHE_FEED: "a:b" })).toThrow('QUIVER_CACHE_FEED: expected host:port or off, got "a:b"');
      expect(() => loadConfig(["--cache-feed-sentinels", "127.0.0.1:26379,x"], {})).toThrow('--cache-feed-sentinels: expected host:port, got "x"');
      expect(() => resolveCacheSettings({ feed: "127.0.0.1:7200", feedSentinels: ["127.0.0.1:26379"] }, {}, true)).toThrow("the change feed is named twice");
    });
  });
});
