import type { KvEntry, NodeHealth, ProcessScanPage, PutOutcome, ReadContext, ReadSlot, ScanPage, ServerProcess } from "../kv/kv-node.ts";
import { neverNow } from "../kv/kv-node.ts";
import type { LayoutMismatch, ViewLayout } from "../kv/layout-ledger.ts";
import { CallerDeadlineError, FailoverUnderWayError, raceDeadline, ShardHungError, ShardUnavailableError, StorageError, StorageTimeoutError, WriteNotAcknowledgedError } from "../kv/storage-errors.ts";
import { LATENESS_JUDGE, type StallJudge } from "../resilience/local-stall.ts";
import type { ResilienceSettings } from "../resilience/settings.ts";
import type { ShardNode } from "../resilience/resilient-shard.ts";
import type { Discovery } from "./discovery.ts";
import type { Member, MemberStats, ReadFrom } from "./member.ts";
import { Membership } from "./membership.ts";

/**
 * A replica set's own settings, plus the resilience settings of the shard's
 * policies (src/resilience/), so a topology file sets both in one place.
 */
export interface ReplicaSetOptions extends Partial<ResilienceSettings> {
  /** Shard name; also the KvNode id. */
  readonly id: string;
  readonly discovery: Discovery;
  /** Default `nearest`: the healthy member with the lowest latency EWMA. */
  readonly readFrom?: ReadFrom;
  /** Replicas that must confirm a write (`WAIT`). Default 1, or 0 when the shard starts without replicas. */
  readonly writeAcks?: number;
  /** `WAIT` timeout (default 500 ms). */
  readonly ackTimeoutMs?: number;
  /** Per-member command deadline for writes, probes and maintenance (default 250 ms); reads use `readAttemptTimeoutMs`. */
  readonly attemptTimeoutMs?: number;
  /**
   * How long writes keep retrying while there is no usable primary (default
   * 10000 ms). Size it above Sentinel's `down-after-milliseconds` plus the
   * promotion (~1–3 s) plus one discovery poll: `shards:up` uses 3000 ms.
   */
  readonly failoverWindowMs?: number;
  /** ROLE probe period for health, latency and lag (default 500 ms). */
  readonly probeIntervalMs?: number;
  /** Discovery poll period besides pushed events (default 1000 ms). */
  readonly discoveryIntervalMs?: number;
  /** Start-up deadline for discovery and connections (default 3000 ms). */
  readonly connectTimeoutMs?: number;
  /** Which read timeouts this process caused, not the member (default: the timer's lateness alone; resilience/local-stall.ts). */
  readonly stall?: StallJudge;
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
  /** Primary attempts that failed retryably (the shard's write policy retries them within the failover window). */
  readonly writeRetries: number;
  /** Write attempts that fewer than `writeAcks` replicas confirmed. */
  readonly writesNotAcknowledged: number;
  /** Reads that had to move to another member after one failed. */
  readonly readFallbacks: number;
  /** Times the Sentinels came to disagree on the primary, or named one whose ROLE says replica (each change logged once). */
  readonly discoveryConflicts: number;
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
 * Each call is one attempt: reads on the best healthy member, writes on the
 * primary (optionally confirmed by `WAIT`). Failures are thrown as typed
 * errors; retries across members and failovers, deadlines and the breaker are
 * the shard's policies (src/resilience/ResilientShard), which is safe because
 * every write is an idempotent last-write-wins put.
 */
export class ReplicaSet implements ShardNode {
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  /** `getMany` races its one attempt against what is left of `ctx.deadline`: the policies need no timer of their own for it. */
  readonly readsSettleByDeadline = true;
  readonly id: string;
  private readonly options: ReplicaSetOptions;
  private readonly discovery: Discovery;
  private readonly readFrom: ReadFrom;
  private readonly membership: Membership;
  private writeAcks: number;
  private closed = false;
  private counters = { writeRetries: 0, writesNotAcknowledged: 0, readFallbacks: 0 };
  private readonly attemptMs: number;
  private readonly maxAttemptMs: number;
  private readonly attemptsPerRead: number;
  private readonly stall: StallJudge;
  /** The last timed-out read attempt of each call (its ReadContext), for a retry on the same member to wait on. */
  private readonly timedOut = new WeakMap<ReadContext, { readonly keys: readonly string[]; readonly member: Member; readonly work: Promise<ReadSlot[]>; readonly since: number }>();

  private constructor(options: ReplicaSetOptions) {
    this.id = options.id;
    this.options = options;
    this.discovery = options.discovery;
    this.readFrom = options.readFrom ?? "nearest";
    this.writeAcks = options.writeAcks ?? -1;
    this.attemptMs = options.readAttemptTimeoutMs ?? 20;
    this.maxAttemptMs = Math.max(this.attemptMs, options.readAttemptMaxMs ?? 1000);
    this.attemptsPerRead = 1 + (options.readRetries ?? 2);
    this.stall = options.stall ?? LATENESS_JUDGE;
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
   * One read attempt on the best member in read order, bounded by
   * `readAttemptTimeoutMs` and the request deadline. A member that fails or
   * stalls is marked unhealthy (moving it to the back of the read order, so
   * the shard policy's retry tries the next one) and the failure is thrown as
   * a typed, retryable error for the breaker to count.
   */
  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    if (keys.length === 0) return [];
    if (ctx?.fromPrimary) return this.getManyPrimary(keys, ctx.signal);
    const member = this.membership.readOrder[0];
    if (!member) throw new ShardUnavailableError(this.id, "no member to read from");
    const started = performance.now();
    // Each attempt gets its share of what is left of the request's budget, at least `readAttemptTimeoutMs`, at most
    // `readAttemptMaxMs`; the last one that fits gets the rest (at most `readAttemptMaxMs`). With the 50 ms budget
    // the second attempt got 20 ms and the third none, so a shard answering in 26 ms never answered in time.
    const remaining = ctx?.deadline === undefined ? this.attemptMs : ctx.deadline - started;
    let budget = Math.min(remaining, Math.max(this.attemptMs, Math.min(this.maxAttemptMs, remaining / this.attemptsPerRead)));
    if (remaining - budget < this.attemptMs) budget = Math.min(remaining, this.maxAttemptMs);
    // Less than a full attempt left: the caller's deadline, not the member, will end it.
    const cut = remaining < this.attemptMs;
    // A retry of the same call on the same member waits for the reply its timed-out attempt still has coming,
    // rather than asking again: a slow member's answer to the first request comes before one to a second could.
    const earlier = ctx === undefined ? undefined : this.timedOut.get(ctx);
    const again = earlier !== undefined && earlier.keys === keys && earlier.member === member ? earlier : undefined;
    const work = again?.work ?? member.node.getMany(keys, ctx);
    const since = again?.since ?? started;
    try {
      const rows = await raceDeadline(work, budget, (late) => new StorageTimeoutError(`shard ${this.id} read on ${member.address}`, Math.round(budget), late));
      member.observe(performance.now() - since);
      return rows;
    } catch (error) {
      if (ctx !== undefined && error instanceof StorageTimeoutError) this.timedOut.set(ctx, { keys, member, work, since });
      // An attempt the caller's deadline cut short says nothing about the shard: not the member's fault, not
      // the breaker's to count (CallerDeadlineError). A full attempt without an answer is the member's, unless
      // this process was too busy to hear the answer (resilience/local-stall.ts) or most shards timed out
      // together (resilience/common-cause.ts).
      if (cut && error instanceof StorageTimeoutError) throw new CallerDeadlineError(error);
      const memberAtFault = !(error instanceof StorageTimeoutError) || this.stall.stalled(error, { shard: this.id, trial: false }) === null;
      if (memberAtFault) {
        this.membership.markFailed(member, error);
        this.counters.readFallbacks++;
        // The longest wait any read gives a member, and no healthy member left to try: a retry would wait as long again.
        if (error instanceof StorageTimeoutError && budget >= this.maxAttemptMs && this.membership.readOrder[0]?.healthy !== true) {
          throw new ShardHungError(`shard ${this.id} read on ${member.address}`, Math.round(budget), error.lateMs);
        }
      }
      if (error instanceof StorageError) throw error;
      throw new ShardUnavailableError(this.id, `read on ${member.address} failed: ${error instanceof Error ? error.message : String(error)}`, error);
    }
  }

  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return Promise.resolve({ written: 0, ignored: 0, sameTime: 0 });
    const acks = this.writeAcks;
    const ackMs = this.options.ackTimeoutMs ?? 500;
    return this.onPrimary("write", async (m) => {
      // Not while a failover is under way, and not acknowledged if one began meanwhile: the primary may be about to
      // be deposed and its rows discarded (sentinel-discovery.ts). The policy retries on the new primary.
      if (this.discovery.failoverUnderWay()) throw new FailoverUnderWayError(this.id, "nothing");
      // Its connection down (the primary stopped or unreachable), the client would refuse the command without sending
      // it (no offline queue): said so here, since a write refused before sending changed nothing (storage-errors.ts).
      if (!m.node.connected) throw new ShardUnavailableError(this.id, `write failed on the primary ${m.address} (not connected: nothing sent)`, undefined, "nothing");
      let out: PutOutcome;
      if (acks <= 0) out = await m.node.putMany(entries, signal);
      else {
        try {
          const { written, ignored, sameTime } = await m.node.putManyAcked(entries, acks, ackMs, signal);
          out = { written, ignored, sameTime };
        } catch (error) {
          if (error instanceof WriteNotAcknowledgedError) this.counters.writesNotAcknowledged++;
          throw error;
        }
      }
      if (this.discovery.failoverUnderWay()) throw new FailoverUnderWayError(this.id);
      return out;
    });
  }

  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return Promise.resolve(0);
    const acks = this.writeAcks;
    const ackMs = this.options.ackTimeoutMs ?? 500;
    return this.onPrimary("delete", (m) =>
      acks <= 0 ? m.node.deleteMany(keys, signal) : m.node.deleteManyAcked(keys, acks, ackMs, signal),
    );
  }

  /** Reads from the primary only (with the failover window): the authoritative copy, for rebalancing. */
  getManyPrimary(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.onPrimary("read", (m) => m.node.getMany(keys, signal ? { signal } : undefined));
  }

  /** Compare-and-delete on the primary (see RedisKvNode.deleteIfNotNewer); answers the keys kept as newer. */
  deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]> {
    if (items.length === 0) return Promise.resolve([]);
    return this.onPrimary("delete", (m) => m.node.deleteIfNotNewer(items, signal));
  }

  /** The layout ledger's reconciliation on the primary (RedisKvNode.reconcileLayouts). */
  reconcileLayouts(layouts: readonly ViewLayout[], mode: "check" | "record"): Promise<LayoutMismatch[]> {
    return this.onPrimary("layout ledger", (m) => m.node.reconcileLayouts(layouts, mode));
  }

  /** The layout ledger on the primary (RedisKvNode.readLayouts). */
  readLayouts(): Promise<ViewLayout[]> {
    return this.onPrimary("layout ledger", (m) => m.node.readLayouts());
  }

  /** The placement record on the primary (shard/placement.ts), or null. */
  readPlacement(): Promise<string | null> {
    return this.onPrimary("placement", (m) => m.node.readPlacement());
  }

  /** Replaces the placement record on the primary. */
  writePlacement(record: string): Promise<void> {
    return this.onPrimary("placement", (m) => m.node.writePlacement(record));
  }

  /** Removes the placement record on the primary. */
  clearPlacement(): Promise<void> {
    return this.onPrimary("placement", (m) => m.node.clearPlacement());
  }

  /** Keys on the primary (DBSIZE), for migration progress. */
  size(): Promise<number> {
    return this.onPrimary("size", (m) => m.node.size());
  }

  /**
   * Scans the primary. A cursor is only good on the process that issued it, so it names that process
   * (RedisKvNode.scan): after a failover or a restart mid-scan the next page throws ScanRestartError
   * (not retryable: the policies pass it on) and the caller scans again from "0"; never a page that skipped keys.
   */
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.onPrimary("scan", (m) => m.node.scan(cursor, count, prefix));
  }

  /** A scan page on the primary with the process (address, `run_id`) that answered it, read in the same MULTI. */
  scanPrimary(cursor: string, count: number): Promise<ProcessScanPage> {
    return this.onPrimary("scan", (m) => m.node.scanWithProcess(cursor, count));
  }

  /** The primary's process now (address, `run_id`). */
  primaryProcess(): Promise<ServerProcess> {
    return this.onPrimary("scan", (m) => m.node.serverProcess());
  }

  /** The settings this shard was connected with (its policies read theirs from here). */
  get tuning(): ReplicaSetOptions {
    return this.options;
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
      discoveryConflicts: this.membership.discoveryConflicts,
      ...this.counters,
      members: this.membership.members().map((m) => m.stats()),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.membership.close();
  }

  /**
   * One attempt of `fn` on the primary. A retryable failure marks the member
   * (when it is at fault), asks discovery for the current primary and is
   * thrown as a typed retryable error: the shard's write policy retries it
   * through the failover window. Never reports success it did not get.
   */
  private async onPrimary<T>(what: string, fn: (m: Member) => Promise<T>): Promise<T> {
    const primary = this.membership.primary;
    if (!primary || this.closed) {
      void this.membership.refresh();
      // Refused without asking a server: a write refused here changed nothing (storage-errors.ts, Sent).
      throw new ShardUnavailableError(this.id, `${what}: no primary known`, undefined, "nothing");
    }
    try {
      return await fn(primary);
    } catch (error) {
      if (!isRetryable(error)) throw error;
      this.counters.writeRetries++;
      if (blamesMember(error)) this.membership.markFailed(primary, error);
      // It says it is a replica: the refresh asks its ROLE, and the other Sentinels, before writing there again.
      if (error instanceof Error && error.name === "ReplyError" && error.message.startsWith("READONLY")) this.membership.demoted(primary);
      void this.membership.refresh();
      if (error instanceof StorageError) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new ShardUnavailableError(this.id, `${what} failed on the primary ${primary.address} (${reason})`, error);
    }
  }
}
