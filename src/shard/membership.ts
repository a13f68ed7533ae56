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
  /** The query after the one running, for callers that came while it ran (refresh). */
  private refreshAgain: Promise<void> | undefined;
  /** Times discovery's answer turned into one its sources disagree on, or whose named primary says it is a replica. */
  discoveryConflicts = 0;
  /** The last such conflict, as logged (undefined while the Sentinels agree on a primary that says it is one). */
  private conflict: string | undefined;

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
    await this.adopt(layout);
    await Promise.all(this.members().map((m) => m.node.whenReady(Math.max(0, deadline - Date.now()))));
    await this.probe();
    discovery.watch(() => void this.refresh());
    this.every(this.options.probeIntervalMs, () => this.probe());
    // A poll finding a query under way skips (the query is as fresh as the poll would be).
    if (discovery.kind === "sentinel") this.every(this.options.discoveryIntervalMs, () => (this.refreshing === undefined ? this.refresh() : Promise.resolve()));
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

  /**
   * Re-resolves the layout; concurrent callers share one query. One asked for
   * while a query runs gets one more after it: that query may have read the
   * Sentinels before the change that prompted the call (a +switch-master
   * arriving mid-query), and asking every Sentinel and checking ROLE takes a while.
   */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.refreshing !== undefined) {
      this.refreshAgain ??= this.refreshing.then(() => {
        this.refreshAgain = undefined;
        return this.refresh();
      });
      return this.refreshAgain;
    }
    this.refreshing = this.options.discovery
      .resolve()
      .then((layout) => (this.closed ? undefined : this.adopt(layout)))
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

  /** Marks the primary as demoted (a write it refused READONLY): the next refresh asks ROLE before it trusts it again. */
  demoted(member: Member): void {
    member.reportedRole = "replica";
  }

  /**
   * Applies a layout from discovery. A fixed one as it is; Sentinel's with the
   * primary confirmed: the most-named one whose ROLE does not say replica,
   * among equally named ones one that says master (choose). With none, the
   * shard has no primary (writes fail as "no primary known" and refresh).
   */
  private async adopt(layout: Layout): Promise<void> {
    if (this.options.discovery.kind !== "sentinel") {
      this.apply(layout, layout.primary);
      return;
    }
    const chosen = await this.choose(layout);
    if (this.closed) return;
    this.note(layout, chosen);
    this.apply(chosen ?? layout, chosen?.primary);
  }

  /**
   * Walks the named primaries best first (newest configuration epoch, then
   * most named: sentinel-discovery.ts rankLayouts): the first whose ROLE says
   * master is taken, or failing that among the equally ranked, the first that
   * cannot be asked now (it may be back soon). A lower-ranked master never wins over a better one that cannot be
   * reached: that is what an old master cut off with one Sentinel looks like
   * while the others promote a replica, and writing to it would lose them
   * (e2fd0d4 did, for a review). One that says replica is passed over. The
   * primary the probes already confirm costs no round trip, so a steady
   * shard asks nothing more.
   */
  private async choose(layout: Layout): Promise<Layout | undefined> {
    let fallback: Layout | undefined;
    for (const candidate of [layout, ...(layout.rivals ?? [])]) {
      // Among equally ranked ones a master is preferred to one that cannot be asked; never one ranked lower.
      if (fallback && outranks(fallback, candidate)) break;
      const role = await this.roleOf(candidate.primary);
      if (role === "master") return candidate;
      if (role !== "replica") fallback ??= candidate;
    }
    return fallback;
  }

  /** ROLE of an address: the probes' answer for the confirmed primary, otherwise asked now (connecting if it is new). */
  private async roleOf(address: string): Promise<Member["reportedRole"]> {
    const known = this.byAddress.get(address);
    if (known && known === this.current && known.healthy && known.reportedRole === "master") return "master";
    const member = known ?? this.connect(address);
    if (!member) return undefined;
    if (!(await member.node.whenReady(this.options.attemptTimeoutMs))) return undefined;
    await this.probeMember(member);
    return member.healthy ? member.reportedRole : undefined;
  }

  /** Logs (once per change) and counts Sentinels that disagree, or a named primary refused for saying it is a replica. */
  private note(layout: Layout, chosen: Layout | undefined): void {
    const candidates = [layout, ...(layout.rivals ?? [])];
    const named = candidates.map((c) => `${c.primary} (named by ${c.namedBy?.join(", ") ?? "?"})`).join(", ");
    const outcome = chosen ? `following ${chosen.primary}` : "none says it is a master: no primary, writes wait for one";
    const conflict =
      candidates.length > 1 ? `the Sentinels disagree on the primary: ${named}; ${outcome}` : chosen?.primary !== layout.primary ? `the Sentinels name ${named}, which says it is a replica; ${outcome}` : undefined;
    if (conflict === this.conflict) return;
    if (conflict !== undefined) this.discoveryConflicts++;
    console.error(`quiver: shard ${this.options.shard}: ${conflict ?? `the Sentinels agree on the primary again: ${layout.primary}`}`);
    this.conflict = conflict;
  }

  /** A new member (as a replica until a layout says otherwise), probed once connected; undefined for a bad address. */
  private connect(address: string): Member | undefined {
    const hp = parseHostPort(address);
    if (!hp || this.closed) return undefined;
    const member = new Member(new RedisKvNode({ ...hp, commandTimeoutMs: this.options.attemptTimeoutMs }), "replica");
    this.byAddress.set(address, member);
    void member.node.whenReady(this.options.connectTimeoutMs).then((ok) => (ok ? this.probeMember(member) : undefined));
    return member;
  }

  /** Makes the member map match a layout (new members connect, vanished ones close) with `primary` as the primary, or none. */
  private apply(layout: Layout, primary: string | undefined): void {
    const wanted = new Set([layout.primary, ...layout.replicas]);
    for (const address of wanted) if (!this.byAddress.has(address)) this.connect(address);
    for (const [address, member] of this.byAddress) {
      if (wanted.has(address)) continue;
      this.byAddress.delete(address);
      void member.node.close();
    }
    for (const member of this.byAddress.values()) member.role = member.address === primary ? "primary" : "replica";
    this.setPrimary(primary === undefined ? undefined : this.byAddress.get(primary));
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

/** Does `a` rank above `b` (a newer configuration epoch, or as new and named by more Sentinels)? */
function outranks(a: Layout, b: Layout): boolean {
  const ea = a.epoch ?? -1;
  const eb = b.epoch ?? -1;
  return ea !== eb ? ea > eb : (a.namedBy?.length ?? 1) > (b.namedBy?.length ?? 1);
}
