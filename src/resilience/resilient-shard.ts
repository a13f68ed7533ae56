import { BrokenCircuitError, BulkheadRejectedError } from "cockatiel";
import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { neverNow } from "../kv/kv-node.ts";
import { ShardBreakerOpenError, ShardSaturatedError, StorageError, StorageTimeoutError } from "../kv/storage-errors.ts";
import { raceDeadline } from "./deadline.ts";
import type { BreakerState, GuardedOp, ResilienceObserver, ShardOp, ShardPolicies } from "./shard-policies.ts";
import type { ResilienceSettings } from "./settings.ts";

/** What a shard offers below its policies: a KvNode plus the primary-only calls rebalancing needs. */
export interface ShardNode extends KvNode {
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]>;
  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]>;
  size(): Promise<number>;
}

/** Breaker states of a shard, for /readyz, /metrics and the health score. */
export interface ShardGuardState {
  readonly shard: string;
  readonly read: BreakerState;
  readonly write: BreakerState;
}

/**
 * A shard behind its policies, as the ring sees it. Reads run
 * `wrap(bulkhead, breaker, retry)` around one replica-set attempt each, and
 * the whole call is raced against the request's deadline (or
 * `requestTimeoutMs`): a shard that cannot answer in time fails the call
 * with a typed error, which the ring turns into UNAVAILABLE slots for this
 * shard's keys only — never a late answer. While the read breaker is open a
 * read fails in microseconds without I/O. Writes run the write policy (retries
 * with exponential back-off through the failover window, each attempt bounded
 * by `writeTimeoutMs`); an open write breaker fails them at once with
 * `ShardBreakerOpenError` (503 + Retry-After at the edge).
 */
export class ResilientShard implements ShardNode {
  readonly readsNow = "never";
  readonly getManyNow = neverNow;
  readonly id: string;

  constructor(
    private readonly inner: ShardNode,
    private readonly policies: ShardPolicies,
    private readonly settings: ResilienceSettings,
    private readonly observer: ResilienceObserver,
    /** Bound on one write attempt: `writeTimeoutMs` plus the replicas' WAIT timeout. */
    private readonly writeAttemptMs: number = settings.writeTimeoutMs,
  ) {
    this.id = inner.id;
  }

  guardState(): ShardGuardState {
    return { shard: this.id, read: this.policies.read.state(), write: this.policies.write.state() };
  }

  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    if (keys.length === 0) return [];
    const started = performance.now();
    const deadline = ctx?.deadline ?? started + this.settings.requestTimeoutMs;
    const budget = deadline - started;
    const inner = this.inner;
    // The replica set sizes its attempts from the deadline: give it one when the caller did not.
    const innerCtx: ReadContext = ctx?.deadline !== undefined ? ctx : { ...ctx, deadline };
    const attempt = (c: { attempt: number }): Promise<ReadSlot[]> =>
      c.attempt > 0 && performance.now() >= deadline ? Promise.reject(this.timeout("read", budget)) : inner.getMany(keys, innerCtx);
    try {
      return await raceDeadline(this.policies.read.policy.execute(attempt as (c: unknown) => Promise<ReadSlot[]>), budget, () => this.timeout("read", budget));
    } catch (error) {
      throw this.failed("read", this.policies.read, error);
    }
  }

  async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return { written: 0, ignored: 0 };
    const limit = this.writeAttemptMs;
    try {
      return await this.policies.write.policy.execute(() => raceDeadline(this.inner.putMany(entries, signal), limit, () => this.timeout("write", limit)));
    } catch (error) {
      throw this.failed("write", this.policies.write, error);
    }
  }

  /** Deletes are writes: the same policy, breaker included. */
  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return 0;
    try {
      return await this.policies.write.policy.execute(() => this.inner.deleteMany(keys, signal));
    } catch (error) {
      throw this.failed("write", this.policies.write, error);
    }
  }

  /** Rebalancing's authoritative read: retried through a failover, no breaker (it runs in the background). */
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]> {
    return this.policies.primary.execute(() => this.inner.getManyPrimary(keys, signal));
  }

  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]> {
    return this.policies.primary.execute(() => this.inner.deleteIfNotNewer(items, signal));
  }

  size(): Promise<number> {
    return this.policies.primary.execute(() => this.inner.size());
  }

  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.policies.primary.execute(() => this.inner.scan(cursor, count, prefix));
  }

  /** The replica set's health, with the breaker states (an open read breaker makes the shard not ok). */
  async health(): Promise<NodeHealth> {
    const h = await this.inner.health();
    const g = this.guardState();
    return { id: h.id, ok: h.ok && g.read !== "open", detail: { ...h.detail, breakers: { read: g.read, write: g.write } } };
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private timeout(op: ShardOp, ms: number): StorageTimeoutError {
    return new StorageTimeoutError(`shard ${this.id} ${op}`, Math.round(ms));
  }

  /** Maps policy refusals to typed storage errors and reports the failure. */
  private failed(op: ShardOp, guard: GuardedOp, error: unknown): unknown {
    let out = error;
    if (error instanceof BrokenCircuitError) out = new ShardBreakerOpenError(this.id, op, guard.retryAfterMs());
    else if (error instanceof BulkheadRejectedError) out = new ShardSaturatedError(this.id);
    this.observer.failed(this.id, op, out instanceof StorageError ? out.code : "error");
    return out;
  }
}
