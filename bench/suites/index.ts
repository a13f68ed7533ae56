import { loadgenSuite } from "./loadgen.ts";
import { lookupSuite } from "./lookup.ts";
import type { Suite } from "./suite.ts";

export type { BenchContext, Suite } from "./suite.ts";

/**
 * Every suite, in run order. Slot for issue 3: a `lookup-redis` suite (same
 * measurements against `npm run shards:up`, writing lookup-redis.json) goes here.
 */
export const SUITES: readonly Suite[] = [loadgenSuite, lookupSuite];
