import { RedisKvNode } from "../kv/redis-node.ts";
import { pause } from "../kv/storage-errors.ts";
import { parseHostPort } from "./address.ts";
import type { Discovery, Layout } from "./discovery.ts";
import { Member, type ReadFrom, readOrder } from "./member.ts";

export interface MembershipOptions {
  readonly shard: string;
  readonly discovery: Discovery;
  readonly readFrom: ReadFrom;
  /** Per-member command deadline; also the probe deadline. */
  readonly attemptTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly probeIntervalMs: number;
  readonly discoveryIntervalMs: number;
}

/**
 * Who is in a shard and how each member is doing: applies layouts from
 * discovery (connecting new members, closing vanished ones), probes every
 * member with ROLE for health, latency and replication offsets, and keeps
 * the read order up to date so the read path only indexes an array.
 */
export class Membership {
  private readonly options: MembershipOptions;
  private readonly byAddress = new Map<string, Member>();
  private current: Member | undefined;
  private order: Member[] = [];
  private refreshing: Promise<void> | undefined;
  private timers: ReturnType<typeof setInterval>[] = [];
  private closed = false;
  primaryChanges = 0;

  constructor(options: MembershipOptions) {
    this.options = options;
  }

  /** Resolves the first layout (retrying until the connect deadline), connects, probes once, starts the timers. */
  async start(): Promise<Layout> {
    const { discovery, connectTimeoutMs } = this.options;
    const deadline = Date.now() + connectTimeoutMs;
    let layout: Layout | undefined;
    let lastError: unknown;
    for (let i = 0; i < 1000 && !layout; i++) {
      try {
        layout = await discovery.resolve();
      } catch (error) {
        lastError = error;
        if (Date.now() >= deadline) break;
        await pause(100);
      }
    }
    if (!layout) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`shard "${this.options.shard}": discovery failed: ${reason}`);
    }
    this.apply(layout);
    await Promise.all(this.members().map((m) => m.node.whenReady(Math.max(0, deadline - Date.now()))));
    await this.probe();
    discovery.watch(() => void this.refresh());
    this.every(this.options.probeIntervalMs, () => this.probe());
    if (discovery.kind === "sentinel") this.every(this.options.discoveryIntervalMs, () => this.refresh());
    return layout;
  }

  get primary(): Member | undefined {
    return this.current;
  }

  /** Members in the order reads should try them (recomputed on probes and failures, not per read). */
  get readOrder(): readonly Member[] {
    return this.order;
  }

  members(): Member[] {
    return [...this.byAddress.values()];
  }

  /** Records a failed command and moves the member to the back of the read order. */
  markFailed(member: Member, error: unknown): void {
    member.fail(error);
    this.order = readOrder(this.members(), this.options.readFrom);
  }

  /** Re-resolves the layout; concurrent callers share one query. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refreshing ??= this.options.discovery
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

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.options.discovery.close();
    await Promise.all(this.members().map((m) => m.node.close()));
    this.byAddress.clear();
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      task().catch(() => {});
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Makes the member map match a layout: new members connect, vanished ones close. */
  private apply(layout: Layout): void {
    const wanted = new Set([layout.primary, ...layout.replicas]);
    for (const address of wanted) {
      if (this.byAddress.has(address)) continue;
      const hp = parseHostPort(address);
      if (!hp) continue;
      const member = new Member(new RedisKvNode({ ...hp, commandTimeoutMs: this.options.attemptTimeoutMs }), "replica");
      this.byAddress.set(address, member);
      void member.node.whenReady(this.options.connectTimeoutMs).then((ok) => (ok ? this.probeMember(member) : undefined));
    }
    for (const [address, member] of this.byAddress) {
      if (wanted.has(address)) continue;
      this.byAddress.delete(address);
      void member.node.close();
    }
    for (const member of this.byAddress.values()) member.role = member.address === layout.primary ? "primary" : "replica";
    this.setPrimary(this.byAddress.get(layout.primary));
  }

  private setPrimary(next: Member | undefined): void {
    if (this.current && next && this.current !== next) this.primaryChanges++;
    this.current = next;
    this.order = readOrder(this.members(), this.options.readFrom);
  }

  /** ROLE on every member: health, latency, offsets and lag; notices a primary that is no longer one. */
  private async probe(): Promise<void> {
    const members = this.members();
    await Promise.all(members.map((m) => this.probeMember(m)));
    const primary = this.current;
    for (const m of members) {
      const known = primary?.offset !== undefined && m.offset !== undefined;
      m.lagBytes = m === primary ? 0 : known ? Math.max(0, primary.offset! - m.offset!) : undefined;
    }
    if (primary?.reportedRole === "replica") {
      // Sentinel knows better; with fixed addresses, follow a manual promotion if it is unambiguous.
      const masters = members.filter((m) => m.reportedRole === "master");
      if (this.options.discovery.kind === "sentinel") void this.refresh();
      else if (masters.length === 1) {
        primary.role = "replica";
        masters[0]!.role = "primary";
        this.setPrimary(masters[0]);
        return;
      }
    }
    this.order = readOrder(members, this.options.readFrom);
  }

  private probeMember(member: Member): Promise<void> {
    if (this.closed) return Promise.resolve();
    member.probing ??= this.probeOnce(member).finally(() => {
      member.probing = undefined;
    });
    return member.probing;
  }

  private async probeOnce(member: Member): Promise<void> {
    const started = performance.now();
    try {
      const role = await member.node.role();
      member.observe(performance.now() - started);
      member.reportedRole = role.role;
      member.offset = role.role === "other" ? undefined : role.offset;
      // A member the layout calls a replica reads as current only while it says it is one, linked to its primary. A
      // deposed primary restarted from its own files says "master" until Sentinel turns it round (~10 s): it was read
      // first, as a healthy linked replica, and answered pre-failover values PRESENT (1,680 of them in 8 s).
      member.linked = member.role === "primary" ? role.role !== "replica" || role.linkState === "connected" : role.role === "replica" && role.linkState === "connected";
    } catch (error) {
      member.fail(error);
    }
  }
}
