import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadContext, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { neverNow, UNAVAILABLE } from "../kv/kv-node.ts";
import { pause, ShardUnavailableError, StorageError, WriteNotAcknowledgedError, withDeadline } from "../kv/storage-errors.ts";
import type { Discovery } from "./discovery.ts";
import type { Member, MemberStats, ReadFrom } from "./member.ts";
import { Membership } from "./membership.ts";

export interface ReplicaSetOptions {
  /** Shard name; also the KvNode id. */
  readonly id: string;
  readonly discovery: Discovery;
  /** Default `nearest`: the healthy member with the lowest latency EWMA. */
  readonly readFrom?: ReadFrom;
  /** Replicas that must confirm a write (`WAIT`). Default 1, or 0 when the shard starts without replicas. */
  readonly writeAcks?: number;
  /** `WAIT` timeout (default 500 ms). */
  readonly ackTimeoutMs?: number;
  /** Whole-read deadline across members (default 1000 ms). */
  readonly requestTimeoutMs?: number;
  /** Per-member command deadline (default 250 ms): how fast a stalled member is given up on. */
  readonly attemptTimeoutMs?: number;
  /** How long writes keep retrying while there is no usable primary (default 5000 ms). */
  readonly failoverWindowMs?: number;
  /** ROLE probe period for health, latency and lag (default 500 ms). */
  readonly probeIntervalMs?: number;
  /** Discovery poll period besides pushed events (default 1000 ms). */
  readonly discoveryIntervalMs?: number;
  /** Start-up deadline for discovery and connections (default 3000 ms). */
  readonly connectTimeoutMs?: number;
}

/** Plain data for /readyz and /metrics. */
export interface ReplicaSetStats {
  readonly id: string;
  readonly discovery: "sentinel" | "static";
  readonly primary: string | null;
  readonly readFrom: ReadFrom;
  readonly writeAcks: number;
  /** Times the primary changed (failovers followed). */
  readonly primaryChanges: number;
  /** Write attempts repeated because the primary failed or did not confirm. */
  readonly writeRetries: number;
  /** Write attempts that fewer than `writeAcks` replicas confirmed. */
  readonly writesNotAcknowledged: number;
  /** Reads that had to move to another member after one failed. */
  readonly readFallbacks: number;
  readonly members: readonly MemberStats[];
}

/** Redis replies that mean "this server cannot take writes right now", as opposed to a bad request. */
const TRANSIENT_REPLY = /^(READONLY|LOADING|MASTERDOWN|NOREPLICAS|TRYAGAIN|BUSY)/;

function isRetryable(error: unknown): boolean {
  if (error instanceof StorageError) return error.retryable;
  if (error instanceof Error && error.name === "ReplyError") return TRANSIENT_REPLY.test(error.message);
  return true; // Connection-level: closed socket, not writeable, reconnecting.
}

/** True when the member itself is at fault (down, stalled), not the request or the replicas. */
const blamesMember = (error: unknown): boolean =>
  !(error instanceof WriteNotAcknowledgedError) && !(error instanceof Error && error.name === "ReplyError");

/**
 * A shard: one primary and its replicas, presented as a single KvNode.
 * Reads go to the best healthy member and move on within the request deadline
 * when one stalls; writes go to the primary (optionally confirmed by `WAIT`)
 * and are retried across a failover within a bounded window, which is safe
 * because every write is an idempotent last-write-wins put.
 */
export class ReplicaSet implements KvNode {
  readonly readsNow = "never";
  readonly getManyNow = neverNow;
  readonly id: string;
  private readonly options: ReplicaSetOptions;
  private readonly discovery: Discovery;
  private readonly readFrom: ReadFrom;
  private readonly membership: Membership;
  private writeAcks: number;
  private closed = false;
  private counters = { writeRetries: 0, writesNotAcknowledged: 0, readFallbacks: 0 };

  private constructor(options: ReplicaSetOptions) {
    this.id = options.id;
    this.options = options;
    this.discovery = options.discovery;
    this.readFrom = options.readFrom ?? "nearest";
    this.writeAcks = options.writeAcks ?? -1;
    this.membership = new Membership({
      shard: options.id,
      discovery: options.discovery,
      readFrom: this.readFrom,
      attemptTimeoutMs: options.attemptTimeoutMs ?? 250,
      connectTimeoutMs: options.connectTimeoutMs ?? 3000,
      probeIntervalMs: options.probeIntervalMs ?? 500,
      discoveryIntervalMs: options.discoveryIntervalMs ?? 1000,
    });
  }

  /** Resolves the layout, connects to every member and starts probing; throws naming the shard if discovery fails. */
  static async connect(options: ReplicaSetOptions): Promise<ReplicaSet> {
    const set = new ReplicaSet(options);
    try {
      const layout = await set.membership.start();
      if (set.writeAcks < 0) set.writeAcks = layout.replicas.length > 0 ? 1 : 0;
    } catch (error) {
      await set.close();
      throw error;
    }
    return set;
  }

  /**
   * Tries members in read order until one answers or the request deadline
   * passes; a member that fails is marked unhealthy (moving it to the back)
   * and the next one is tried at once. Gives UNAVAILABLE slots, never throws.
   */
  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    const signal = ctx?.signal;
    if (keys.length === 0) return [];
    const deadline = Date.now() + (this.options.requestTimeoutMs ?? 1000);
    const attemptMs = this.options.attemptTimeoutMs ?? 250;
    let tried: Member[] = [];
    for (let attempt = 0; attempt < 16; attempt++) {
      const order = this.membership.readOrder;
      let member = order.find((m) => !tried.includes(m));
      if (!member) {
        tried = [];
        member = order[0];
      }
      const remaining = deadline - Date.now();
      if (!member || remaining <= 0 || signal?.aborted) break;
      if (attempt > 0) this.counters.readFallbacks++;
      tried.push(member);
      const started = performance.now();
      try {
        const work = member.node.getMany(keys, ctx);
        const rows = await (remaining < attemptMs ? withDeadline(work, remaining, `shard ${this.id} read`, signal) : work);
        member.observe(performance.now() - started);
        return rows;
      } catch (error) {
        if (signal?.aborted) break;
        this.membership.markFailed(member, error);
      }
    }
    ctx?.degraded?.push(this.id);
    return new Array<ReadSlot>(keys.length).fill(UNAVAILABLE);
  }

  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return Promise.resolve({ written: 0, ignored: 0 });
    const acks = this.writeAcks;
    const ackMs = this.options.ackTimeoutMs ?? 500;
    return this.onPrimary("write", signal, async (m) => {
      if (acks <= 0) return m.node.putMany(entries, signal);
      try {
        const { written, ignored } = await m.node.putManyAcked(entries, acks, ackMs, signal);
        return { written, ignored };
      } catch (error) {
        if (error instanceof WriteNotAcknowledgedError) this.counters.writesNotAcknowledged++;
        throw error;
      }
    });
  }

  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return Promise.resolve(0);
    const acks = this.writeAcks;
    const ackMs = this.options.ackTimeoutMs ?? 500;
    return this.onPrimary("delete", signal, (m) =>
      acks <= 0 ? m.node.deleteMany(keys, signal) : m.node.deleteManyAcked(keys, acks, ackMs, signal),
    );
  }

  /** Reads from the primary only (with the failover window): the authoritative copy, for rebalancing. */
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.onPrimary("read", signal, (m) => m.node.getMany(keys, signal ? { signal } : undefined));
  }

  /** Compare-and-delete on the primary (see RedisKvNode.deleteIfNotNewer); answers the keys kept as newer. */
  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]> {
    if (items.length === 0) return Promise.resolve([]);
    return this.onPrimary("delete", signal, (m) => m.node.deleteIfNotNewer(items, signal));
  }

  /** Keys on the primary (DBSIZE), for migration progress. */
  size(): Promise<number> {
    return this.onPrimary("size", undefined, (m) => m.node.size());
  }

  /** Scans the primary. A failover mid-scan invalidates the cursor; callers restart when `primaryAddress` changes. */
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.onPrimary("scan", undefined, (m) => m.node.scan(cursor, count, prefix));
  }

  /** The current primary's address (changes on failover). */
  get primaryAddress(): string | undefined {
    return this.membership.primary?.address;
  }

  /** ok while any member can serve reads; `writable` says whether the primary is up; `roles` maps address to role. */
  async health(): Promise<NodeHealth> {
    const members = this.membership.members().map((m) => m.stats());
    const primary = this.membership.primary;
    return {
      id: this.id,
      ok: members.some((m) => m.healthy),
      detail: {
        primary: primary?.address ?? null,
        writable: primary?.healthy ?? false,
        roles: Object.fromEntries(members.map((m) => [m.address, m.role])),
        discovery: this.discovery.describe(),
        members,
      },
    };
  }

  stats(): ReplicaSetStats {
    return {
      id: this.id,
      discovery: this.discovery.kind,
      primary: this.membership.primary?.address ?? null,
      readFrom: this.readFrom,
      writeAcks: this.writeAcks,
      primaryChanges: this.membership.primaryChanges,
      ...this.counters,
      members: this.membership.members().map((m) => m.stats()),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.membership.close();
  }

  /**
   * Runs `fn` on the primary, retrying retryable failures with a short back-off
   * and a discovery refresh until the failover window closes. Never reports
   * success it did not get: the last error (or shard_unavailable) is thrown.
   */
  private async onPrimary<T>(what: string, signal: AbortSignal | undefined, fn: (m: Member) => Promise<T>): Promise<T> {
    const windowMs = this.options.failoverWindowMs ?? 5000;
    const deadline = Date.now() + windowMs;
    let lastError: unknown = new Error("no primary known");
    for (let attempt = 0; attempt < 10_000; attempt++) {
      const primary = this.membership.primary;
      if (primary) {
        try {
          return await fn(primary);
        } catch (error) {
          lastError = error;
          if (signal?.aborted || !isRetryable(error)) throw error;
          if (blamesMember(error)) this.membership.markFailed(primary, error);
          void this.membership.refresh();
        }
      }
      if (Date.now() >= deadline || this.closed) break;
      this.counters.writeRetries++;
      await pause(Math.min(25 * 2 ** attempt, 250), signal);
    }
    if (lastError instanceof WriteNotAcknowledgedError) throw lastError;
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new ShardUnavailableError(this.id, `${what} failed on the primary for ${windowMs} ms (${reason})`, lastError);
  }
}
