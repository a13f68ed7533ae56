import type { RedisKvNode } from "../kv/redis-node.ts";

/** Role a replica set gives a member (from discovery, corrected by ROLE probes). */
export type MemberRole = "primary" | "replica";

/** One member's view for /readyz and /metrics (plain data). */
export interface MemberStats {
  readonly address: string;
  readonly role: MemberRole;
  readonly healthy: boolean;
  /** Exponentially weighted moving average of command latency (reads and probes); null before the first sample. */
  readonly latencyEwmaMs: number | null;
  /** Failed commands since start (timeouts, connection errors). */
  readonly errors: number;
  /** Replication offset from the last ROLE probe. */
  readonly replicationOffset: number | null;
  /** Bytes this replica is behind the primary (0 for the primary); null when unknown. */
  readonly lagBytes: number | null;
  /** A replica's link to its primary is up (false while it syncs or its primary is gone): read only as a fallback. */
  readonly linked: boolean;
  /** Values read here that were not stored rows (answered UNAVAILABLE); present once there is one. */
  readonly unreadableRows?: number;
  readonly lastError: string | null;
}

/** EWMA weight of a new sample: ~the last 5 samples dominate, so a slow node is noticed within a few calls. */
const ALPHA = 0.2;

/** Bookkeeping around one redis-server of a replica set. */
export class Member {
  readonly address: string;
  readonly node: RedisKvNode;
  role: MemberRole;
  /** What the server itself said in its last ROLE reply. */
  reportedRole: "master" | "replica" | "other" | undefined;
  healthy = false;
  ewmaMs: number | undefined;
  errors = 0;
  offset: number | undefined;
  /**
   * For a replica, whether its link to the primary is up (`ROLE`'s state
   * "connected"); a replica restarted empty and still syncing answered every
   * read NOT_FOUND, and one whose primary died keeps the rows it had.
   */
  linked = true;
  lagBytes: number | undefined;
  lastError: string | undefined;
  /** The outstanding probe, shared by callers so a stalled server does not pile up probes. */
  probing: Promise<void> | undefined;

  constructor(node: RedisKvNode, role: MemberRole) {
    this.node = node;
    this.address = node.address;
    this.role = role;
  }

  /** Records a successful command and its latency. */
  observe(ms: number): void {
    this.ewmaMs = this.ewmaMs === undefined ? ms : this.ewmaMs + ALPHA * (ms - this.ewmaMs);
    this.healthy = true;
  }

  /** Records a failure; the member stays out of reads until a probe succeeds. */
  fail(error: unknown): void {
    this.errors++;
    this.healthy = false;
    this.lastError = error instanceof Error ? error.message : String(error);
  }

  stats(): MemberStats {
    return {
      address: this.address,
      role: this.role,
      healthy: this.healthy,
      latencyEwmaMs: this.ewmaMs === undefined ? null : Math.round(this.ewmaMs * 1000) / 1000,
      errors: this.errors,
      replicationOffset: this.offset ?? null,
      lagBytes: this.lagBytes ?? null,
      linked: this.linked,
      ...(this.node.unreadable > 0 ? { unreadableRows: this.node.unreadable } : {}),
      lastError: this.lastError ?? null,
    };
  }
}

/** Read preference of a replica set. */
export type ReadFrom = "primary" | "replica" | "nearest";

/**
 * Members in the order reads should try them. Healthy candidates first by
 * latency (replicas win ties, keeping load off the primary), then the
 * primary as the fallback for `replica`; then replicas whose link to the
 * primary is down (syncing: possibly empty; or their primary is gone: what
 * they hold is all there is), and unhealthy ones last, as a final resort
 * when health flags are stale. `primary` reads only the primary.
 */
export function readOrder(members: readonly Member[], readFrom: ReadFrom): Member[] {
  const primary = members.find((m) => m.role === "primary");
  if (readFrom === "primary") return primary ? [primary] : [];
  const byLatency = (a: Member, b: Member): number =>
    (a.ewmaMs ?? 0) - (b.ewmaMs ?? 0) || (a.role === b.role ? 0 : a.role === "replica" ? -1 : 1);
  const pool = readFrom === "replica" ? members.filter((m) => m.role === "replica") : [...members];
  const order = pool.filter((m) => m.healthy && m.linked).sort(byLatency);
  if (readFrom === "replica" && primary && !order.includes(primary) && primary.healthy) order.push(primary);
  order.push(...pool.filter((m) => m.healthy && !m.linked).sort(byLatency));
  for (const m of pool) if (!m.healthy) order.push(m);
  if (readFrom === "replica" && primary && !primary.healthy) order.push(primary);
  return order;
}
