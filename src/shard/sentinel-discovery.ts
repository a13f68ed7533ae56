import { Redis } from "ioredis";
import { withDeadline } from "../kv/storage-errors.ts";
import { replyFields } from "../kv/redis-reply.ts";
import { parseHostPort } from "./address.ts";
import type { Discovery, Layout } from "./discovery.ts";

export interface SentinelDiscoveryOptions {
  /** `host:port` of each Sentinel. */
  readonly sentinels: readonly string[];
  readonly masterName: string;
  /** Deadline per Sentinel query (default 500 ms). */
  readonly timeoutMs?: number;
}

/** Sentinel events that may change a shard's layout; each carries the master name. */
const EVENTS = ["+switch-master", "+sdown", "-sdown", "+odown", "-odown", "+slave", "+convert-to-slave", "+failover-end"];
/** A Sentinel has begun a failover of the master (the leader publishes each step). */
const FAILOVER_STEPS = ["+try-failover", "+failover-state-select-slave", "+selected-slave", "+failover-state-send-slaveof-noone", "+failover-state-wait-promotion", "+promoted-slave", "+failover-state-reconf-slaves"];
/** That Sentinel's failover ended, or was given up. */
const FAILOVER_ENDS = ["+failover-end", "+failover-end-for-timeout", "-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout"];
/** Longest a failover counts as under way without an end heard (a lost event must not refuse writes for long). */
const FAILOVER_MAX_MS = 30_000;

/** Flags that make Sentinel's view of a replica unusable for reads. */
const BAD_FLAGS = /s_down|o_down|disconnected/;

/**
 * Discovery through Redis Sentinel: asks every Sentinel at once
 * `SENTINEL GET-MASTER-ADDR-BY-NAME` and `SENTINEL REPLICAS` (each bounded by
 * `timeoutMs`) and answers the primary most of those that answered name, with
 * the others' answers as rivals, so the replica set can confirm it with ROLE
 * (membership.ts). It subscribes to every Sentinel's event channels so a
 * failover is followed as soon as one of them announces `+switch-master`.
 * Until 12-07 it asked the first Sentinel that answered and kept asking it:
 * one stale Sentinel naming a replica refused every write to its shard (an
 * audit: 5 pushes, 0 written, 52 s, while 2 of 3 Sentinels named the primary).
 */
export class SentinelDiscovery implements Discovery {
  readonly kind = "sentinel";
  private readonly options: SentinelDiscoveryOptions;
  private readonly clients: Redis[];
  private readonly subscribers: Redis[];
  private readonly listeners: Array<() => void> = [];
  /** Per Sentinel (by index), when the failover it announced began; cleared by its end, or by +switch-master from any. */
  private readonly failovers = new Map<number, number>();

  constructor(options: SentinelDiscoveryOptions) {
    if (options.sentinels.length === 0) throw new Error(`sentinel discovery for "${options.masterName}": no sentinels`);
    this.options = options;
    this.clients = options.sentinels.map((s) => connectTo(s, false));
    this.subscribers = options.sentinels.map((s) => connectTo(s, true));
    this.subscribers.forEach((sub, index) => {
      sub.subscribe(...new Set([...EVENTS, ...FAILOVER_STEPS, ...FAILOVER_ENDS])).catch(() => {});
      sub.on("message", (channel: string, message: string) => {
        if (!message.split(" ").includes(options.masterName)) return;
        if (FAILOVER_STEPS.includes(channel)) {
          if (!this.failovers.has(index)) this.failovers.set(index, Date.now());
        } else if (channel === "+switch-master") this.failovers.clear();
        else if (FAILOVER_ENDS.includes(channel)) this.failovers.delete(index);
        if (EVENTS.includes(channel)) for (const l of this.listeners) l();
      });
    });
  }

  /**
   * Every Sentinel's answer, grouped by the primary it names: the most-named
   * first (ties in the order the Sentinels are configured), the others as its
   * rivals. A hung Sentinel delays the answer by its `timeoutMs` at most.
   */
  async resolve(): Promise<Layout> {
    const { sentinels, masterName } = this.options;
    const answers = await Promise.all(
      this.clients.map((client, index) =>
        this.ask(client).then(
          (layout) => ({ index, layout }),
          (error: unknown) => ({ index, error: `${sentinels[index]}: ${error instanceof Error ? error.message : String(error)}` }),
        ),
      ),
    );
    const named = answers.flatMap((a) => ("layout" in a ? [{ sentinel: sentinels[a.index]!, layout: a.layout }] : []));
    if (named.length === 0) {
      const errors = answers.flatMap((a) => ("error" in a ? [a.error] : []));
      throw new Error(`no sentinel knows master "${masterName}" (${errors.join("; ")})`);
    }
    return rankLayouts(named);
  }

  watch(onChange: () => void): void {
    this.listeners.push(onChange);
  }

  /**
   * From a Sentinel's first failover step until its end (or +switch-master
   * from any). Sentinel sends REPLICAOF NO ONE to the replica it picked ~1 s
   * before it announces the switch, and the old primary takes writes all that
   * while, confirmed by the replica it did not pick: with writeAcks 1 and two
   * replicas, 57 of 723 pushes answered 200 in a manual failover were then
   * discarded as the old primary resynced.
   */
  failoverUnderWay(): boolean {
    const now = Date.now();
    for (const [index, since] of this.failovers) {
      if (now - since < FAILOVER_MAX_MS) return true;
      this.failovers.delete(index);
    }
    return false;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, masterName: this.options.masterName, sentinels: this.options.sentinels };
  }

  async close(): Promise<void> {
    for (const c of [...this.clients, ...this.subscribers]) c.disconnect();
  }

  /** Sentinels whose SENTINEL MASTER failed, logged once each. */
  private readonly epochRefused = new Set<Redis>();

  private noteEpochRefused(client: Redis, error: unknown): void {
    if (this.epochRefused.has(client)) return;
    this.epochRefused.add(client);
    const index = this.clients.indexOf(client);
    console.error(`quiver: sentinel ${this.options.sentinels[index] ?? "?"}: SENTINEL MASTER failed (${error instanceof Error ? error.message : String(error)}); its answers are ranked without their configuration epoch`);
  }

  private async ask(client: Redis): Promise<Layout> {
    const name = this.options.masterName;
    const timeout = this.options.timeoutMs ?? 500;
    if (!(await ready(client, timeout))) throw new Error("not connected");
    const masterReply = client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name);
    const replicasReply = client.call("SENTINEL", "REPLICAS", name);
    const stateReply = client.call("SENTINEL", "MASTER", name);
    replicasReply.catch(() => {});
    stateReply.catch(() => {});
    const master = (await withDeadline(masterReply, timeout, "sentinel master query")) as unknown[] | null;
    if (!Array.isArray(master) || master.length < 2) throw new Error(`unknown master "${name}"`);
    const primary = `${master[0]}:${master[1]}`;
    // The configuration epoch this Sentinel's view of the master comes from: each failover raises it. Optional: a
    // Sentinel that will not answer SENTINEL MASTER (an ACL without it) still names the primary, ranked by votes alone.
    const epoch = await withDeadline(stateReply, timeout, "sentinel master state query").then(
      (reply) => Number(replyFields(reply as unknown[]).get("config-epoch")),
      (error: unknown) => {
        this.noteEpochRefused(client, error);
        return Number.NaN;
      },
    );
    const replicas: string[] = [];
    for (const entry of (await withDeadline(replicasReply, timeout, "sentinel replicas query")) as unknown[][]) {
      const fields = replyFields(entry);
      const address = `${String(fields.get("ip"))}:${String(fields.get("port"))}`;
      if (!BAD_FLAGS.test(String(fields.get("flags") ?? "")) && address !== primary) replicas.push(address);
    }
    return { primary, replicas, ...(Number.isInteger(epoch) ? { epoch } : {}) };
  }
}

/**
 * Sentinels' answers grouped by the primary they name, best first, the rest as
 * its rivals: the newest configuration epoch first (each failover raises it,
 * so a Sentinel that missed one names an older primary with an older epoch),
 * then the most named, then the order the Sentinels are configured in.
 * Votes alone could not tell a stale majority that missed a failover from a
 * partitioned old master with one Sentinel beside it.
 */
export function rankLayouts(named: ReadonlyArray<{ readonly sentinel: string; readonly layout: Layout }>): Layout {
  const groups = new Map<string, { replicas: readonly string[]; namedBy: string[]; epoch: number | undefined }>();
  for (const { sentinel, layout } of named) {
    const group = groups.get(layout.primary);
    if (group === undefined) groups.set(layout.primary, { replicas: layout.replicas, namedBy: [sentinel], epoch: layout.epoch });
    else {
      group.namedBy.push(sentinel);
      if (layout.epoch !== undefined && (group.epoch === undefined || layout.epoch > group.epoch)) group.epoch = layout.epoch;
    }
  }
  const layouts: Layout[] = [...groups].map(([primary, g]) => ({ primary, replicas: g.replicas, namedBy: g.namedBy, ...(g.epoch === undefined ? {} : { epoch: g.epoch }) }));
  // Stable sort: ties stay in the order of the first Sentinel that named them.
  layouts.sort((a, b) => (b.epoch ?? -1) - (a.epoch ?? -1) || b.namedBy!.length - a.namedBy!.length);
  const [top, ...rivals] = layouts as [Layout, ...Layout[]];
  return rivals.length === 0 ? top : { ...top, rivals };
}

/** Waits (bounded) for a client that is still connecting. */
function ready(client: Redis, ms: number): Promise<boolean> {
  if (client.status === "ready") return Promise.resolve(true);
  if (client.status !== "connecting" && client.status !== "connect" && client.status !== "wait") return Promise.resolve(false);
  return new Promise((resolve) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      resolve(false);
    }, ms);
    client.once("ready", onReady);
  });
}

/** A quiet, auto-reconnecting client; queries fail fast while disconnected. */
function connectTo(address: string, subscriber: boolean): Redis {
  const hp = parseHostPort(address);
  if (!hp) throw new Error(`sentinel address "${address}": expected host:port`);
  const client = new Redis({
    host: hp.host,
    port: hp.port,
    connectionName: subscriber ? "quiver-sentinel-events" : "quiver-sentinel",
    enableOfflineQueue: subscriber,
    maxRetriesPerRequest: subscriber ? null : 0,
    retryStrategy: (times) => Math.min(100 * times, 1000),
  });
  client.on("error", () => {});
  return client;
}
