import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis, type RedisOptions } from "ioredis";
import type { ChangeEvent, ChangeFeed, ChangeListener, FeedState, InvalidationScope } from "./change-feed.ts";
import { LocalChangeFeed } from "./local-feed.ts";

/** Where the feed's Redis is (--cache-feed, the L2's, or the topology's first shard by name): one address, or Sentinels and a master name. */
export type FeedAddress = { readonly address: string } | { readonly sentinels: readonly string[]; readonly masterName: string };

export interface RedisFeedOptions {
  readonly where: FeedAddress;
  /** Pub/sub channel; pods of one edge site share it. */
  readonly channel?: string;
  /** How often this pod announces its latest sequence number, so others notice lost messages (ms, default 1000). */
  readonly heartbeatMs?: number;
  /** Seconds from publish (sender's clock) to applied here, per received message. */
  readonly onLag?: (seconds: number) => void;
  /**
   * How long this pod's own messages may go without coming back before the
   * feed is taken to be deaf (ms, default 3 heartbeats and at least 3000):
   * a gap, and both connections made again (RedisChangeFeed.checkHearing).
   */
  readonly deafAfterMs?: number;
}

/**
 * Wire format, one JSON message per publish:
 *   { o: origin pod, s: sequence, t: sent at (ms), c: [[key, ts, 0 put | 1 delete], ...] }
 *   { o, s, t, i: scope }          an invalidation
 *   { o, s, t, h: 1 }              a heartbeat; `s` is the last sequence sent
 */
interface Message {
  readonly o: string;
  readonly s: number;
  readonly t: number;
  /** As sent; what arrives is checked (changesOf, scopeOf). */
  readonly c?: unknown;
  readonly i?: unknown;
  readonly h?: 1;
}

/** A message's changes as events, or undefined when any is not `[key, event time, 0 | 1]`. */
function changesOf(c: unknown): ChangeEvent[] | undefined {
  if (!Array.isArray(c)) return undefined;
  const events = new Array<ChangeEvent>(c.length);
  for (let i = 0; i < c.length; i++) {
    const e: unknown = c[i];
    if (!Array.isArray(e) || e.length !== 3) return undefined;
    const [key, ts, op] = e as [unknown, unknown, unknown];
    if (typeof key !== "string" || typeof ts !== "number" || !Number.isFinite(ts) || (op !== 0 && op !== 1)) return undefined;
    events[i] = { key, ts, op: op === 1 ? "delete" : "put" };
  }
  return events;
}

/** An invalidation's scope, or undefined when it is neither `{"all": true}` nor `{"view": "<name>"}`. */
function scopeOf(i: unknown): InvalidationScope | undefined {
  if (typeof i !== "object" || i === null) return undefined;
  const o = i as { all?: unknown; view?: unknown };
  if (o.all === true) return { all: true };
  return typeof o.view === "string" ? { view: o.view } : undefined;
}

/** Retired incarnations kept (RedisChangeFeed.retired): a few per pod restarted since, pods of one site. */
const RETIRED_MAX = 256;

// First retry after 20 ms: while the subscription is down, L1 may serve copies a missed event would have dropped.
const backoff = (times: number): number => Math.min(10 * 2 ** Math.min(times, 10), 1000);

/** `host:port`; an IPv6 host in brackets (`[::1]:6379`, as a topology file's shard may name it) loses them. */
function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  return { host: host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host, port: Number(address.slice(colon + 1)) };
}

function connect(where: FeedAddress, name: string): Redis {
  const common: RedisOptions = {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    // connectTimeout ends at the TCP handshake: a hung server (stopped, its host frozen) still accepts connections,
    // and the ready check then waited for ever, the feed never reaching the replica Sentinel had promoted.
    // A command past this bound fails, the handshake's too, and ioredis connects again (asking the Sentinels).
    commandTimeout: 2000,
    retryStrategy: backoff,
  };
  return "address" in where
    ? new Redis({ ...common, ...parseAddress(where.address) })
    : new Redis({ ...common, name: where.masterName, sentinels: where.sentinels.map(parseAddress), sentinelRetryStrategy: backoff });
}

/**
 * The change feed shared by the pods of one edge site, over Redis pub/sub on
 * the instance the settings name (--cache-feed), else the L2's, else the
 * topology's first shard by name (src/app.ts openCaches).
 *
 * Why pub/sub and not a Stream: delivery is one hop with no per-pod cursor,
 * no trimming policy and no memory on its Redis, and what a pod misses needs no
 * replay: it expires L1 (whose entries are bounded by their TTL anyway) and
 * reads on. What a Stream would add, replay after a disconnect, costs a
 * blocking reader per pod and unbounded retention for a benefit the cache does
 * not need. Pub/sub's weakness, silent loss, is covered here: every message
 * carries a per-pod sequence number and pods announce their latest one every
 * second, so a lost message (dropped publish, broken subscription) is a
 * detected gap, and a re-established subscription is always a gap.
 */
export class RedisChangeFeed implements ChangeFeed {
  readonly origin: string;
  private readonly local: LocalChangeFeed;
  private pub: Redis;
  private sub: Redis;
  private readonly channel: string;
  private readonly onLag: ((seconds: number) => void) | undefined;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private seq = 0;
  private readonly lastSeen = new Map<string, number>();
  /** Incarnations forgotten for a newer one of the same pod, with their last sequence, the oldest first (at most RETIRED_MAX). */
  private readonly retired = new Map<string, number>();
  private wasSubscribed = false;
  private subscribed = false;
  private published = 0;
  private received = 0;
  private dropped = 0;
  private readonly heartbeatMs: number;
  private readonly deafAfterMs: number;
  /** When the oldest message sent since one of this pod's own last came back was sent (performance.now()); undefined when none is awaited. */
  private echoAwaitedSince: number | undefined;
  /** When the heartbeat timer last ran (performance.now()), to tell a stalled event loop from a deaf feed. */
  private lastTickAt = performance.now();
  /** When the subscription was last (re)established (performance.now()): the window in which running pods announce themselves starts. */
  private subscribedAt = performance.now();
  /**
   * The `t` of this pod's first message sent once the subscription had been
   * up for the deaf-after time; undefined until one is sent (firstHeard).
   */
  private windowProbeT: number | undefined;
  /** This subscription has read everything published in its first deaf-after time: every pod running then was heard (firstHeard). */
  private heardRunningPods = false;

  constructor(origin: string, options: RedisFeedOptions) {
    // This process's incarnation after the pod's name: a restarted container keeps its name (the pod's hostname,
    // PID 1) but starts its sequence again at 0, and under the same origin the others took its messages for old
    // ones (s <= last) and saw no gap until the new sequence passed the old: lost messages went undetected.
    this.origin = `${origin}#${randomBytes(4).toString("hex")}`;
    this.local = new LocalChangeFeed(this.origin);
    this.channel = options.channel ?? "quiver:feed";
    this.onLag = options.onLag;
    [this.pub, this.sub] = this.attach(options.where);
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.deafAfterMs = options.deafAfterMs ?? Math.max(3 * this.heartbeatMs, 3000);
    this.heartbeat = setInterval(() => this.tick(), this.heartbeatMs);
    this.heartbeat.unref?.();
  }

  /** The two connections at `where`, the subscriber's events handled while it is this feed's. */
  private attach(where: FeedAddress): [Redis, Redis] {
    const pub = connect(where, "quiver-feed-pub");
    const sub = connect(where, "quiver-feed-sub");
    pub.on("error", () => {});
    sub.on("error", () => {});
    sub.on("ready", () => {
      sub.subscribe(this.channel).then(
        () => {
          if (sub !== this.sub) return;
          this.subscribed = true;
          this.subscribedAt = performance.now();
          this.openWindow();
          // Messages sent before this subscription never come back to it.
          this.echoAwaitedSince = undefined;
          // Anything published while we were away is lost to us.
          if (this.wasSubscribed) this.gap("feed subscription re-established");
          this.wasSubscribed = true;
        },
        () => sub.disconnect(true),
      );
    });
    sub.on("close", () => {
      if (sub !== this.sub) return;
      // Lost now, not only once it is back: what L1 holds from here on may miss other pods' writes.
      if (this.subscribed) this.gap("feed subscription lost");
      this.subscribed = false;
      this.openWindow();
    });
    sub.on("messageBuffer", (_channel: Buffer, payload: Buffer) => {
      if (sub === this.sub) this.receive(payload);
    });
    return [pub, sub];
  }

  /**
   * Runs the feed at `where` from now on (a topology reload changed the shard
   * it runs on: src/app.ts). The pods already there were not heard, and those
   * still at the old place are not any more: a gap now, and another once the
   * new subscription is up (a re-established one always is).
   */
  moveTo(where: FeedAddress): void {
    const old = [this.pub, this.sub];
    [this.pub, this.sub] = this.attach(where);
    this.subscribed = false;
    this.wasSubscribed = true;
    this.echoAwaitedSince = undefined;
    this.openWindow();
    this.gap("feed moved to another Redis");
    for (const c of old) void Promise.race([c.quit(), sleep(500)]).catch(() => undefined).finally(() => c.disconnect());
  }

  /** Every heartbeat: announce the latest sequence number, and check that the feed still hears (checkHearing). */
  private tick(): void {
    const now = performance.now();
    const stalled = now - this.lastTickAt > 2 * this.heartbeatMs;
    this.lastTickAt = now;
    // After a stalled event loop the echo may be waiting unread in the socket: judged at the next tick instead.
    if (!stalled) this.checkHearing(now);
    this.send({ o: this.origin, s: this.seq, t: Date.now(), h: 1 });
  }

  /**
   * A subscription can be deaf without its connection closing: the server
   * hung (stopped, its host frozen, a link that drops packets), or Sentinel
   * promoted a replica while this pod's connections stay on the old primary,
   * which still accepts them. Every pod hears its own messages come back
   * (its heartbeat at least once a second), so one whose own messages stop
   * coming back is not hearing the others' either: that is a gap (L1 is
   * expired and, not hearing, fills only briefly), and both connections are
   * made again, through the Sentinels when they name the primary. Until
   * then such a pod took its subscription for a live one: its L1 kept other
   * pods' overwritten rows for their whole TTL, and after a Sentinel
   * failover away from a hung primary it never followed.
   */
  private checkHearing(now: number): void {
    const since = this.echoAwaitedSince;
    if (since === undefined || now - since < this.deafAfterMs) return;
    this.echoAwaitedSince = undefined;
    if (this.subscribed) {
      this.subscribed = false;
      this.gap(`feed not heard: this pod's own messages did not come back within ${this.deafAfterMs} ms`);
    }
    this.openWindow();
    this.sub.disconnect(true);
    this.pub.disconnect(true);
  }

  get hearing(): boolean {
    return this.subscribed;
  }

  /** Waits for the subscription (start-up); false if not up within `ms` (the pod starts anyway; the feed catches up with a gap). */
  async whenSubscribed(ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    while (!this.subscribed && performance.now() < until) await sleep(10);
    return this.subscribed;
  }

  publish(events: readonly ChangeEvent[]): void {
    if (events.length === 0) return;
    this.local.publish(events);
    this.published += events.length;
    const c = new Array<readonly [string, number, 0 | 1]>(events.length);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      c[i] = [e.key, e.ts, e.op === "put" ? 0 : 1];
    }
    this.send({ o: this.origin, s: ++this.seq, t: Date.now(), c });
  }

  invalidate(scope: InvalidationScope): void {
    this.local.invalidate(scope);
    this.send({ o: this.origin, s: ++this.seq, t: Date.now(), i: scope });
  }

  subscribe(listener: ChangeListener): () => void {
    return this.local.subscribe(listener);
  }

  state(): FeedState & { readonly dropped: number } {
    const local = this.local.state();
    return { kind: "redis", connected: this.subscribed && this.pub.status === "ready", published: this.published, received: this.received, gaps: local.gaps, dropped: this.dropped };
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.local.close();
    for (const c of [this.pub, this.sub]) {
      try {
        if (c.status === "ready") await Promise.race([c.quit(), sleep(500)]);
      } catch {
        // Disconnecting anyway.
      }
      c.disconnect();
    }
  }

  /** Fire and forget: a publish that fails shows up at the receivers as a sequence gap. */
  private send(message: Message): void {
    if (this.pub.status !== "ready") {
      if (message.h === undefined) this.dropped++;
      return;
    }
    // Awaited only while subscribed: what comes back then shows the feed hears.
    if (this.subscribed) {
      this.echoAwaitedSince ??= performance.now();
      if (this.windowProbeT === undefined && !this.heardRunningPods && performance.now() - this.subscribedAt >= this.deafAfterMs) this.windowProbeT = message.t;
    }
    this.pub.publish(this.channel, JSON.stringify(message)).catch(() => {
      if (message.h === undefined) this.dropped++;
    });
  }

  private receive(payload: Buffer): void {
    let m: Message;
    try {
      m = JSON.parse(payload.toString("utf8")) as Message;
    } catch {
      return;
    }
    if (typeof m !== "object" || m === null || typeof m.o !== "string" || typeof m.s !== "number") return;
    if (m.o === this.origin) {
      // Our own message came back: the subscription hears (checkHearing).
      this.echoAwaitedSince = undefined;
      // Sent once the subscription had been up for the window: what others published in it has been read (firstHeard).
      if (this.windowProbeT !== undefined && m.t >= this.windowProbeT) {
        this.heardRunningPods = true;
        this.windowProbeT = undefined;
      }
      return;
    }
    const last = this.lastSeen.get(m.o) ?? this.heardAgain(m.o);
    if (last === undefined) this.firstHeard(m);
    if (m.h === 1) {
      if (last !== undefined && m.s > last) this.gap(`missed messages from ${m.o} (${last} → ${m.s})`);
      this.lastSeen.set(m.o, Math.max(m.s, last ?? 0));
      return;
    }
    if (last !== undefined && m.s > last + 1) this.gap(`missed messages from ${m.o} (${last} → ${m.s})`);
    if (last === undefined || m.s > last) this.lastSeen.set(m.o, m.s);
    // A message whose content cannot be read (another version's, a stray publisher's) may have carried changes:
    // it counts as a gap, which expires L1, rather than being skipped or handed on half-read.
    if (m.c !== undefined) {
      const events = changesOf(m.c);
      if (events === undefined) {
        this.gap(`unreadable change message from ${m.o} (${m.s})`);
        return;
      }
      this.received += events.length;
      this.local.deliver(events, m.o);
    } else if (m.i !== undefined) {
      const scope = scopeOf(m.i);
      if (scope === undefined) {
        this.gap(`unreadable invalidation from ${m.o} (${m.s})`);
        return;
      }
      this.local.deliverInvalidation(scope, m.o);
    }
    if (typeof m.t === "number" && Number.isFinite(m.t)) this.onLag?.(Math.max(0, Date.now() - m.t) / 1000);
  }

  /**
   * A pod heard for the first time. Once this subscription has read what
   * was published in its first deaf-after time (at least three heartbeats),
   * every pod running when it began has been heard: one heard later started
   * since, and all it sent came here, so its first message must be its
   * first (sequence 1, or a heartbeat at 0). A later one means its first
   * messages were lost (sent before its publishing connection was up, or a
   * publish that failed): a gap, as a hole later in its sequence is. Taken
   * as its start, they were missed unseen, and this pod kept its L1 copies
   * of the rows they replaced for their TTL (test/cache-feed-unheard.test.ts).
   *
   * "Read", not "up for": the window closes when this pod's own message
   * sent after it comes back (one channel, delivered in order, so all
   * published before it has been read). Timed by this pod's clock when a
   * message is read, a pod busy past the window right after subscribing
   * (start-up: a vector snapshot's readIndexSync, a full collection) read
   * the heartbeats queued meanwhile late, and each running pod that had
   * ever published was a gap: L1 expired and the vector indexes sent to a
   * catch-up scan once per pod.
   */
  private firstHeard(m: Message): void {
    this.forgetEarlierIncarnations(m.o);
    if (this.heardRunningPods && m.s > (m.h === 1 ? 0 : 1)) this.gap(`missed the first messages from ${m.o} (first heard: ${m.s})`);
  }

  /** The subscription (re)starts, or is lost: pods first heard are taken as they come until its window has been read. */
  private openWindow(): void {
    this.heardRunningPods = false;
    this.windowProbeT = undefined;
  }

  /**
   * A new incarnation of a pod is heard: its earlier ones (same name before
   * `#`) have stopped, as a rule, and are forgotten (one entry per pod), but
   * kept aside with their last sequence (retired) in case one has not: a
   * replacement started before the old process stops (start-first, keeping
   * the hostname; PID 1 in both), or two containers given one hostname.
   */
  private forgetEarlierIncarnations(origin: string): void {
    const hash = origin.lastIndexOf("#");
    if (hash < 0) return;
    const name = origin.slice(0, hash + 1);
    for (const [o, last] of this.lastSeen) {
      if (o === origin || !o.startsWith(name) || o.indexOf("#", name.length) >= 0) continue;
      this.lastSeen.delete(o);
      this.retired.set(o, last);
      if (this.retired.size > RETIRED_MAX) this.retired.delete(this.retired.keys().next().value as string);
    }
  }

  /**
   * A retired incarnation heard again (it had not stopped): followed from
   * its last sequence, as before it was forgotten, and kept beside the
   * newer one. Taken as first heard, every message of two live incarnations
   * taking turns was a gap once the window had passed (L1 expired each time).
   */
  private heardAgain(origin: string): number | undefined {
    const last = this.retired.get(origin);
    if (last === undefined) return undefined;
    this.retired.delete(origin);
    this.lastSeen.set(origin, last);
    return last;
  }

  private gap(reason: string): void {
    this.local.deliverGap(reason);
  }
}
