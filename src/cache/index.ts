export { type CacheMetrics, cacheMetrics } from "./cache-metrics.ts";
export { type CacheState, CacheTier, type CacheTierOptions } from "./cache-tier.ts";
export { L1Cache, type L1Options } from "./l1-cache.ts";
export type { L2Tier } from "./l2-slot.ts";
export { viewsToInvalidate } from "./registry-changes.ts";
export { CACHE_DEFAULTS, type CacheInput, type CacheSettings, parseCacheSection, resolveCacheSettings } from "./cache-config.ts";
