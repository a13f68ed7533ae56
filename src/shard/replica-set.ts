import type { KvEntry, KvNode, NodeHealth, PutOutcome, ReadSlot, ScanPage } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import { RedisKvNode } from "../kv/redis-node.ts";
import { pause, ShardUnavailableError, StorageError, WriteNotAcknowledgedError, withDeadline } from "../kv/storage-errors.ts";
import { parseHostPort } from "./address.ts";
import type { Discovery, Layout } from "./discovery.ts";
import { Member, type MemberStats, type ReadFrom, readOrder } from "./member.ts";

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
  readonly id: string;
  private readonly options: ReplicaSetOptions;
  private readonly discovery: Discovery;
  private readonly readFrom: ReadFrom;
  private writeAcks: number;
  private readonly members = new Map<string, Member>();
  private primary: Member | undefined;
  private order: Member[] = [];
  private refreshing: Promise<void> | undefined;
  private timers: ReturnType<typeof setInterval>[] = [];
  private closed = false;
  private counters = { primaryChanges: 0, writeRetries: 0, writesNotAcknowledged: 0, readFallbacks: 0 };

  private constructor(options: ReplicaSetOptions) {
    this.id = options.id;
    this.options = options;
    this.discovery = options.discovery;
    this.readFrom = options.readFrom ?? "nearest";
    this.writeAcks = options.writeAcks ?? -1;
  }

  /** Resolves the layout, connects to every member and starts probing; throws naming the shard if discovery fails. */
  static async connect(options: ReplicaSetOptions): Promise<ReplicaSet> {
    const set = new ReplicaSet(options);
    try {
      await set.start();
    } catch (error) {
      await set.close();
      throw error;
    }
    return set;
  }

  private async start(): Promise<void> {
    const connectMs = this.options.connectTimeoutMs ?? 3000;
    const deadline = Date.now() + connectMs;
    let layout: Layout | undefined;
    let lastError: unknown;
    for (let i = 0; i < 1000 && !layout; i++) {
      try {
        layout = await this.discovery.resolve();
      } catch (error) {
        lastError = error;
        if (Date.now() >= deadline) break;
        await pause(100);
      }
    }
    if (!layout) throw new Error(`shard "${this.id}": discovery failed: ${lastError instanceof Error ? lastError.message : lastError}`);
    if (this.writeAcks < 0) this.writeAcks = layout.replicas.length > 0 ? 1 : 0;
    this.apply(layout);
    await Promise.all([...this.members.values()].map((m) => m.node.whenReady(Math.max(0, deadline - Date.now()))));
    await this.probe();
    this.discovery.watch(() => void this.refresh());
    this.every(this.options.probeIntervalMs ?? 500, () => this.probe());
    if (this.discovery.kind === "sentinel") this.every(this.options.discoveryIntervalMs ?? 1000, () => this.refresh());
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      task().catch(() => {});
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  async getMany(keys: readonly string[], signal?: AbortSignal): Promise<ReadSlot[]> {
    if (keys.length === 0) return [];
    const deadline = Date.now() + (this.options.requestTimeoutMs ?? 1000);
    const order = this.order;
    for (let i = 0; i < order.length; i++) {
      const member = order[i]!;
      const remaining = deadline - Date.now();
      if (remaining <= 0 || signal?.aborted) break;
      if (i > 0) this.counters.readFallbacks++;
      const started = performance.now();
      try {
        const attempt = member.node.getMany(keys, signal);
        const rows = await (remaining < this.attemptMs ? withDeadline(attempt, remaining, `shard ${this.id} read`, signal) : attempt);
        member.observe(performance.now() - started);
        return rows;
      } catch (error) {
        if (signal?.aborted) break;
        member.fail(error);
        this.order = readOrder([...this.members.values()], this.readFrom);
      }
    }
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
    return this.onPrimary("delete", signal, (m) => m.node.deleteMany(keys, signal));
  }

  /** Scans the primary. A failover mid-scan invalidates the cursor; callers restart when `primaryAddress` changes. */
  scan(cursor: string, count: number, prefix?: string): Promise<ScanPage> {
    return this.onPrimary("scan", undefined, (m) => m.node.scan(cursor, count, prefix));
  }

  /** The current primary's address (changes on failover). */
  get primaryAddress(): string | undefined {
    return this.primary?.address;
  }

  async health(): Promise<NodeHealth> {
    const members = [...this.members.values()].map((m) => m.stats());
    return {
      id: this.id,
      ok: members.some((m) => m.healthy),
      detail: {
        primary: this.primary?.address ?? null,
        writable: this.primary?.healthy ?? false,
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
      primary: this.primary?.address ?? null,
      readFrom: this.readFrom,
      writeAcks: this.writeAcks,
      ...this.counters,
      members: [...this.members.values()].map((m) => m.stats()),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.discovery.close();
    await Promise.all([...this.members.values()].map((m) => m.node.close()));
    this.members.clear();
  }

  private get attemptMs(): number {
    return this.options.attemptTimeoutMs ?? 250;
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
      const primary = this.primary;
      if (primary) {
        try {
          return await fn(primary);
        } catch (error) {
          lastError = error;
          if (signal?.aborted || !isRetryable(error)) throw error;
          if (blamesMember(error)) primary.fail(error);
          void this.refresh();
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

  /** Re-resolves the layout; concurrent callers share one query. */
  private refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refreshing ??= this.discovery
      .resolve()
      .then((layout) => {
        if (!this.closed) this.apply(layout);
      })
      .catch(() => {})
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** Makes the member map match a layout: new members connect, vanished ones close. */
  private apply(layout: Layout): void {
    const wanted = new Set([layout.primary, ...layout.replicas]);
    for (const address of wanted) {
      if (this.members.has(address)) continue;
      const hp = parseHostPort(address);
      if (!hp) continue;
      const member = new Member(new RedisKvNode({ ...hp, commandTimeoutMs: this.attemptMs }), "replica");
      this.members.set(address, member);
      void member.node.whenReady(this.options.connectTimeoutMs ?? 3000).then((ok) => (ok ? this.probeMember(member) : undefined));
    }
    for (const [address, member] of this.members) {
      if (wanted.has(address)) continue;
      this.members.delete(address);
      void member.node.close();
    }
    for (const member of this.members.values()) member.role = member.address === layout.primary ? "primary" : "replica";
    this.setPrimary(this.members.get(layout.primary));
  }

  private setPrimary(next: Member | undefined): void {
    if (this.primary && next && this.primary !== next) this.counters.primaryChanges++;
    this.primary = next;
    this.order = readOrder([...this.members.values()], this.readFrom);
  }

  /** ROLE on every member: health, latency, offsets and lag; notices a primary that is no longer one. */
  private async probe(): Promise<void> {
    const members = [...this.members.values()];
    await Promise.all(members.map((m) => this.probeMember(m)));
    const primary = this.primary;
    for (const m of members) {
      m.lagBytes = m === primary ? 0 : primary?.offset !== undefined && m.offset !== undefined ? Math.max(0, primary.offset - m.offset) : undefined;
    }
    if (primary && primary.reportedRole === "replica") {
      const masters = members.filter((m) => m.reportedRole === "master");
      if (this.discovery.kind === "sentinel") void this.refresh();
      else if (masters.length === 1) {
        primary.role = "replica";
        masters[0]!.role = "primary";
        this.setPrimary(masters[0]);
        return;
      }
    }
    this.order = readOrder(members, this.readFrom);
  }

  private async probeMember(member: Member): Promise<void> {
    if (member.probing || this.closed) return;
    member.probing = true;
    const started = performance.now();
    try {
      const role = await member.node.role();
      member.observe(performance.now() - started);
      member.reportedRole = role.role;
      member.offset = role.role === "other" ? undefined : role.offset;
    } catch (error) {
      member.fail(error);
    } finally {
      member.probing = false;
    }
  }
}
