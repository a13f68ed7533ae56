import type { CacheState } from "../../cache/cache-tier.ts";
import type { InvalidationScope } from "../../feed/change-feed.ts";
import type { KvNode } from "../../kv/kv-node.ts";
import type { AnomalyBuffer } from "../../ops/anomaly-buffer.ts";
import type { HealthMonitor } from "../../ops/health-score.ts";
import type { MetricsRegistry } from "../../ops/metrics.ts";
import type { ShedRecorder } from "../../ops/shed-recorder.ts";
import type { Admission } from "../../resilience/admission.ts";
import type { AnswerRelease } from "../../runtime/index.ts";
import type { Registry, RegistryHolder } from "../../registry/index.ts";
import type { FeatureServing } from "../../serving/index.ts";
import type { MatchService } from "../../vector/index.ts";
import type { BoundTimers } from "../work-bounds.ts";

/** Everything the HTTP edge needs, built by src/app.ts. */
export interface HttpDeps {
  readonly registry: RegistryHolder;
  /** The transport-neutral use cases: handlers read the body, call these, encode the answer. */
  readonly serving: FeatureServing;
  /** Claim matching (POST /v1/match). */
  readonly match?: MatchService;
  /** The storage tier, for readiness. */
  readonly store: KvNode;
  readonly metrics: MetricsRegistry;
  /** Served at GET /admin/anomalies. */
  readonly anomalies: AnomalyBuffer;
  /** Process-wide concurrency limit for lookups and pushes. */
  readonly admission: Admission;
  /** Counts and notes what admission refuses (shared with the gRPC edge). */
  readonly sheds: ShedRecorder;
  /** When a finished answer leaves: at once, or with its loop turn's others (runtime/turn-batch.ts). */
  readonly release: AnswerRelease<Response>;
  /** True once shutdown began: /readyz answers 503 so load balancers stop routing here. */
  readonly draining: () => boolean;
  /** Why this pod must not take traffic although it runs (its ring is not where the shards' keys are), or undefined. */
  readonly unready?: () => string | undefined;
  /** The 0–100 health score, for /readyz. */
  readonly health: HealthMonitor;
  readonly limits: HttpLimits;
  /** Re-reads the definitions file; throws QuiverError listing every problem. */
  readonly reloadRegistry: () => Promise<Registry>;
  /** When set, /admin routes require `Authorization: Bearer <token>`. */
  readonly adminToken?: string;
  /** Present when serving from Redis shards: topology reload and migration progress. */
  readonly topology?: TopologyAdmin;
  /** Present when a cache tier is on: namespace invalidation for the admin route. */
  readonly cache?: CacheAdmin;
  /** Extra readiness detail (shard role maps, etc.), merged into /readyz. */
  readonly readinessDetail?: () => Promise<Record<string, unknown>>;
  /** The timers work bounds are kept with (../work-bounds.ts); tests give fake ones. Default: real, unref'd. */
  readonly timers?: BoundTimers;
}

export interface HttpLimits {
  readonly maxBodyBytes: number;
  readonly maxRows: number;
  /** Lookup budget when the client sends no `x-quiver-timeout-ms` (ms). */
  readonly lookupTimeoutMs: number;
  /** How long past its budget a lookup's unfinished work may hold its slot and its client (ms; default 1000; ../work-bounds.ts). */
  readonly overdueGraceMs?: number;
  /** How long after its admission a push's or a match's unfinished work may (ms; default 60000). */
  readonly maxWorkMs?: number;
  /** Most bytes of bodies over 64 KiB read at once, every connection's (default the larger of 256 MiB and twice `maxBodyBytes`; body-budget.ts). */
  readonly bodyBytesInFlight?: number;
}

/** What the admin routes may do with a sharded topology. */
export interface TopologyAdmin {
  /** Re-reads the topology file; starts a migration when the ring changes. */
  reload(): Promise<{ migrating: boolean; shards: readonly string[] }>;
  /** The latest migration's progress, or undefined when there has been none. */
  progress(): unknown;
}

/** What the admin routes may do with the cache tiers. */
export interface CacheAdmin {
  /** Drops a view (or everything) on every pod and in L2; throws when L2 cannot take it. */
  invalidate(scope: InvalidationScope): Promise<void>;
  state(): CacheState;
}
