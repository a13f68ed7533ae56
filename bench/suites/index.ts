import { cacheSuite } from "./cache.ts";
import { grpcSuite } from "./grpc.ts";
import { ingestSuite } from "./ingest.ts";
import { loadgenSuite } from "./loadgen.ts";
import { lookupSuite } from "./lookup.ts";
import { lookupAllocSuite } from "./lookup-alloc.ts";
import { lookupRedisSuite } from "./lookup-redis.ts";
import { matchSuite } from "./match.ts";
import { resilienceSuite } from "./resilience.ts";
import type { Suite } from "./suite.ts";

export type { BenchContext, Suite } from "./suite.ts";

/** Every suite, in run order. A new suite: a module exporting a Suite, listed here. */
export const SUITES: readonly Suite[] = [loadgenSuite, lookupSuite, lookupAllocSuite, lookupRedisSuite, matchSuite, cacheSuite, ingestSuite, grpcSuite, resilienceSuite];
