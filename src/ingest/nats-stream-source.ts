import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  ConsumerEvents,
  type ConsumerMessages,
  connect,
  DeliverPolicy,
  DiscardPolicy,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  nanos,
  type StreamConfig,
} from "nats";
import type { NatsSourceSettings } from "./compile-sources.ts";
import {
  DEFAULT_DEAD_LETTER_RETENTION,
  type DeadLetter,
  type DeadLetterField,
  type DeadLetterQueue,
  type DeadLetterRetention,
  deadLetterOf,
  type LetterFilter,
  letterPasses,
  type NewDeadLetter,
} from "./dead-letters.ts";
import { natsSeedList } from "./server-address.ts";
import { type Delivery, SourceConfigError, type SourceLag, type StreamPublisher, type StreamSource, TOO_LARGE_KEPT_BYTES } from "./stream-source.ts";

/** Bytes of a dead letter kept for its headers (reason, path, error, origin, times) below the server's max_payload. */
const DEAD_LETTER_HEADROOM = 8 * 1024;
/** Longest error and path text a dead letter's headers carry. */
const MAX_ERROR_CHARS = 2048;
/** The header each of a dead letter's fields travels in. */
const HEADER_OF: Readonly<Record<DeadLetterField, string>> = {
  source: "Quiver-Source",
  reason: "Quiver-Reason",
  path: "Quiver-Path",
  error: "Quiver-Error",
  origin: "Quiver-Origin",
  at: "Quiver-At",
  cut: "Quiver-Cut",
};

/** A JetStream delivery keeps its message for ack/nak. */
interface NatsDelivery extends Delivery {
  readonly msg: JsMsg;
}

const NS = 1_000_000;
/** How long close() lets the connection drain before it closes it. */
const DRAIN_MS = 2000;
/**
 * The durable's `max_deliver`: unlimited. The consumer alone decides when a
 * message has failed often enough (it dead-letters it then, with a letter);
 * JetStream stopping at the source's limit dropped messages with no letter
 * whenever their last delivery ended without a verdict: nak'd unread by a
 * consumer that stopped, or left to `ack_wait` by one that died (an audit:
 * 30 of 100 events lost in a rolling deploy while the store refused writes).
 */
const MAX_DELIVER = -1;
/** How often an idle source asks whether its durable consumer still exists (ms). */
const IDLE_CHECK_MS = 2000;
/**
 * How long after finding its consumer gone a source waits before making it
 * (and, when missing, its stream) again: a stream made again under the same
 * name while the server is still removing the old one (nats-server 2.9, file
 * store) was seen to take new messages that no consumer was ever given.
 */
const REATTACH_DELAY_MS = 1000;

/**
 * Drains a connection, or closes it once DRAIN_MS have passed: drain() waits
 * for the server, and one that stalled (SIGSTOP, a partition) held a
 * shutdown forever.
 */
async function drainOrClose(connection: NatsConnection): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = await Promise.race([
    connection.drain().then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), DRAIN_MS))),
  ]);
  clearTimeout(timer);
  if (!drained) await connection.close().catch(() => undefined);
}

/** A JetStream publish that no stream took (its subject's stream is gone): the server answers 503, no responders. */
function isNoStream(e: unknown): boolean {
  const text = String((e as Error)?.message ?? e);
  return text.includes("503") || text.toLowerCase().includes("no responders") || isNotFound(e);
}

function isNotFound(e: unknown): boolean {
  const text = String((e as Error)?.message ?? e);
  return text.includes("not found") || text.includes("404");
}

/** Whether the NATS subject pattern `pattern` (`*` one token, `>` the rest) matches every subject `subject` does. */
export function subjectCovers(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const t = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length) return false;
    // A wildcard in the subject is matched only by a wildcard at least as wide.
    if (p[i] === "*") {
      if (t[i] === ">") return false;
      continue;
    }
    if (p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/** A stream's retention as ensureStream sets it: past either limit JetStream discards the oldest messages. */
export interface StreamLimits {
  readonly maxMessages: number;
  /** 0: no age limit. */
  readonly maxAgeMs: number;
}

/** JetStream's duplicate window when the stream sets none (it may not exceed max_age). */
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

/** The stream settings for `limits`, given the stream's duplicate window (ns; undefined for a new stream: the server's default). */
function limitConfig(limits: StreamLimits, duplicateWindowNs: number | undefined): Partial<StreamConfig> {
  const config = { max_msgs: limits.maxMessages, max_age: nanos(limits.maxAgeMs), discard: DiscardPolicy.Old };
  // The server refuses an age limit under the duplicate window ("duplicates window can not be larger then max age"):
  // the stream's own (an existing stream's may be longer than the default), else the default.
  const window = duplicateWindowNs ?? nanos(DEFAULT_DUPLICATE_WINDOW_MS);
  return limits.maxAgeMs > 0 && config.max_age < window ? { ...config, duplicate_window: config.max_age } : config;
}

/** Streams whose limits the server refused, logged once each. */
const limitsRefused = new Set<string>();

/** What ensureStream needs of a JetStreamManager (a fake in unit tests). */
export type StreamAdmin = { readonly streams: Pick<JetStreamManager["streams"], "info" | "add" | "update"> };

/**
 * ensureStream calls in flight, per stream (by name: the servers a process
 * reaches hold one stream of a name), chained so that one reads the stream's
 * subjects only after the previous one wrote them. Entries leave once their
 * chain is done.
 */
const streamUpdates = new Map<string, Promise<void>>();
/** Read-then-write rounds ensureStream tries before giving up (another pod keeps writing the subjects meanwhile). */
const ENSURE_ROUNDS = 10;

/**
 * Makes the stream when missing, and adds the subjects it does not take yet:
 * sources that share a stream each bring their own subject (JetStream refuses
 * a consumer filter outside the stream's subjects, and a publish to a subject
 * no stream takes). An update writes the whole subject list, so two sources
 * reading it at once each wrote "what I read plus mine" and the second
 * dropped the first's subject (that source said `running` and received
 * nothing: 2 of 8 starts of three sources on one stream). Calls in this
 * process are chained per stream; after writing, the subjects are read again
 * and written again until every wanted one is taken (another pod's write
 * between our read and our write).
 */
export function ensureStream(jsm: StreamAdmin, name: string, subjects: readonly string[], limits?: StreamLimits): Promise<void> {
  const previous = streamUpdates.get(name) ?? Promise.resolve();
  const mine = previous.then(() => ensureStreamNow(jsm, name, subjects, limits));
  const chain = mine.catch(() => undefined);
  streamUpdates.set(name, chain);
  void chain.then(() => {
    if (streamUpdates.get(name) === chain) streamUpdates.delete(name);
  });
  return mine;
}

async function ensureStreamNow(jsm: StreamAdmin, name: string, subjects: readonly string[], limits: StreamLimits | undefined): Promise<void> {
  for (let round = 0; round < ENSURE_ROUNDS; round++) {
    let config: Partial<StreamConfig>;
    try {
      config = (await jsm.streams.info(name)).config;
    } catch (e) {
      if (!isNotFound(e)) throw e;
      try {
        await jsm.streams.add({ name, subjects: [...subjects], ...(limits === undefined ? {} : limitConfig(limits, undefined)) });
      } catch (added) {
        // Another pod made it first (with its own subjects): read it again and add ours.
        if (!String((added as Error)?.message ?? added).includes("already in use")) throw added;
      }
      continue;
    }
    const have = config.subjects ?? [];
    const missing = subjects.filter((s) => !have.some((h) => subjectCovers(h, s)));
    // A stream made before its limits were set (or by a pod with other ones) takes this process's limits.
    const wanted: Partial<StreamConfig> = limits === undefined ? {} : limitConfig(limits, config.duplicate_window);
    const limited = (Object.keys(wanted) as (keyof StreamConfig)[]).every((k) => config[k] === wanted[k]);
    if (missing.length === 0 && limited) return;
    try {
      await jsm.streams.update(name, { subjects: [...have, ...missing], ...wanted });
    } catch (e) {
      if (limited) throw e;
      // The server refused the limits (a setting of the stream conflicts with them): the stream keeps its own, and
      // the letters still go there. Failing here failed every letter, and a batch with a bad event never settled.
      if (!limitsRefused.has(name)) {
        limitsRefused.add(name);
        console.error(`quiver: stream "${name}": its limits (max_msgs ${limits!.maxMessages}, max_age ${limits!.maxAgeMs} ms) were refused, so it keeps its own: ${(e as Error).message ?? e}`);
      }
      // Subjects alone, then read again (another pod may have changed them meanwhile), without limits from here on.
      if (missing.length === 0) return;
      await jsm.streams.update(name, { subjects: [...have, ...missing] });
      limits = undefined;
    }
  }
  throw new Error(`stream "${name}": its subjects kept changing under this process; subjects ${subjects.join(", ")} not taken after ${ENSURE_ROUNDS} tries`);
}

/**
 * A JetStream stream read through a durable pull consumer: explicit ack after
 * the store write, `nak(delay)` on retryable store failures, redelivery to
 * another process of the same durable after `ackWait` when one dies. The
 * server's `max_ack_pending` bounds what is in flight (backpressure). Its
 * `max_deliver` is unlimited: the consumer dead-letters at the source's
 * delivery limit, as on Redis (see MAX_DELIVER).
 */
export class NatsStreamSource implements StreamSource {
  readonly engine = "nats" as const;
  private connection?: NatsConnection;
  private messages?: ConsumerMessages;
  private consumer?: Consumer;
  private readonly queue: JsMsg[] = [];
  /** Tells the server every ackWait/3 that the queued messages are waiting their turn (keepQueuedAlive). */
  private keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly settings: NatsSourceSettings,
    private readonly options: { readonly batchSize: number },
  ) {}

  async start(): Promise<void> {
    this.throwIfClosed();
    if (this.connection === undefined) {
      // Tried again by the consumer (with backoff) while the server is unreachable; once connected, nats.js reconnects.
      const connection = await connect({ servers: natsSeedList(this.settings.servers), name: `quiver-ingest-${this.name}`, maxReconnectAttempts: -1 });
      if (this.closed) {
        await connection.close().catch(() => undefined);
        this.throwIfClosed();
      }
      this.connection = connection;
    }
    await this.attach();
  }

  /**
   * close() may come while start() is still connecting (stop gave up waiting
   * for it): it found no connection to close, and the connect, finishing
   * later, made a consumer that pulled messages and kept them alive forever
   * with no one to handle them. Each step of start/attach checks this.
   */
  private throwIfClosed(): void {
    if (this.closed) throw new Error(`source ${this.name}: closed while starting`);
  }

  /**
   * Makes (or brings in line) the stream and the durable consumer, then
   * consumes: at start, and again once the consumer is found gone.
   */
  private async attach(): Promise<void> {
    const nc = this.connection!;
    const { stream, consumer, subject, ackWaitMs, maxAckPending } = this.settings;
    const jsm = await nc.jetstreamManager();
    this.throwIfClosed();
    await ensureStream(jsm, stream, [subject]);
    this.throwIfClosed();
    // What the sources file says; JetStream keeps a durable's settings, so an existing one is brought in line.
    const wanted = { ack_wait: ackWaitMs * NS, max_deliver: MAX_DELIVER, max_ack_pending: maxAckPending };
    let existing: ConsumerConfig | undefined;
    try {
      existing = (await jsm.consumers.info(stream, consumer)).config;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.throwIfClosed();
    if (existing === undefined) {
      await jsm.consumers.add(stream, { durable_name: consumer, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: subject, ...wanted });
    } else {
      if ((existing.filter_subject ?? "") !== subject) {
        throw new SourceConfigError(
          `source "${this.name}": the durable consumer "${consumer}" of stream "${stream}" filters subject "${existing.filter_subject ?? ""}", not "${subject}"; ` +
            "give this source another consumer name, or delete that consumer (nats consumer rm) if nothing else reads through it",
        );
      }
      // Left at a limited max_deliver (made by an older version), the server would stop redelivering before this
      // consumer dead-letters (a message gone with no letter); an old ack_wait would hand a dead process's messages
      // over at the old pace.
      if (existing.ack_wait !== wanted.ack_wait || existing.max_deliver !== wanted.max_deliver || existing.max_ack_pending !== wanted.max_ack_pending) {
        await jsm.consumers.update(stream, consumer, wanted);
      }
    }
    // Still ours: another pod's update between our write and now may have written a subject list without it.
    this.throwIfClosed();
    await ensureStream(jsm, stream, [subject]);
    this.throwIfClosed();
    this.consumer = await nc.jetstream().consumers.get(stream, consumer);
    this.throwIfClosed();
    const messages = await this.consumer.consume({
      max_messages: this.options.batchSize * 2,
      callback: (m) => {
        this.queue.push(m);
        this.wakeReader();
      },
    });
    if (this.closed) {
      // close() ran while consume() was being set up: what it pulled goes back now.
      messages.stop();
      for (const m of this.queue.splice(0)) m.nak();
      this.throwIfClosed();
    }
    this.messages = messages;
    void this.watch(messages);
    if (this.keepAliveTimer === undefined) {
      this.keepAliveTimer = setInterval(() => this.keepQueuedAlive(), Math.max(100, Math.floor(ackWaitMs / 3)));
      this.keepAliveTimer.unref?.();
    }
  }

  /**
   * consume() pulls ahead of the consumer (up to twice a batch, refilled as
   * the callback takes them), so messages wait in the queue while the batch
   * in hand is written. Past ack_wait JetStream delivered them again, into
   * the same queue, and each copy was processed (an audit with a 700 ms store
   * write and a 1 s ack wait: 200 events consumed 570 times, 370 of them
   * duplicates). `working()` resets their ack timers while they wait. Messages
   * handed out are not kept alive: a consumer that hangs on its batch still
   * leaves it to another after ack_wait.
   */
  private keepQueuedAlive(): void {
    for (const m of this.queue) m.working();
  }

  /**
   * The consumer (or its stream) deleted under us, say by `nats stream rm`
   * and a producer making the stream again: nats.js keeps pulling from the
   * gone consumer and nothing arrives, with no error. Its status events say
   * so; the next read makes the consumer again.
   */
  private async watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of await messages.status()) {
        if (this.closed || messages !== this.messages) return;
        if (s.type === ConsumerEvents.ConsumerDeleted || s.type === ConsumerEvents.ConsumerNotFound || s.type === ConsumerEvents.StreamNotFound || s.type === ConsumerEvents.NoResponders) {
          this.markLost();
        }
      }
    } catch {
      // The iterator ends with its messages (stop, close).
    }
  }

  /** The consumer was found gone (watch, checkWhileIdle); a read from `reattachAt` on attaches again. */
  private lost = false;
  private reattachAt = 0;
  /** When checkWhileIdle last asked the server about the consumer (ms since the epoch). */
  private checkedAt = 0;
  /** The last such question went unanswered (the server unreachable). */
  private unanswered = false;

  private markLost(): void {
    if (this.lost) return;
    this.lost = true;
    this.reattachAt = Date.now() + REATTACH_DELAY_MS;
    this.wakeReader();
  }

  /**
   * While nothing arrives, asks the server every IDLE_CHECK_MS whether the
   * durable still exists: the status events come only while a pull is open
   * or after heartbeats are missed (tens of seconds), and a consumer deleted
   * in between would otherwise be found that late.
   */
  private async checkWhileIdle(): Promise<void> {
    const now = Date.now();
    // While the server does not answer, every idle read asks again (a read that found nothing is no news).
    if (this.closed || this.lost || (now - this.checkedAt < IDLE_CHECK_MS && !this.unanswered) || !this.connection) return;
    this.checkedAt = now;
    try {
      const jsm = await this.connection.jetstreamManager();
      await jsm.consumers.info(this.settings.stream, this.settings.consumer);
      // Nothing arrives either when another pod's stream update dropped this source's subject (written from a stale read).
      await ensureStream(jsm, this.settings.stream, [this.settings.subject]);
      this.unanswered = false;
    } catch (e) {
      this.unanswered = !isNotFound(e);
      if (isNotFound(e)) this.markLost();
      // The client reconnects by itself and a read while it is away only finds nothing: without this the consumer
      // said `running` throughout an outage. The read's error shows it `reconnecting` until a read succeeds.
      else throw new Error(`the NATS server does not answer: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async read(max: number, waitMs: number): Promise<readonly Delivery[]> {
    if (this.lost && !this.closed && Date.now() < this.reattachAt) {
      // Not yet: see REATTACH_DELAY_MS.
      await new Promise((r) => setTimeout(r, Math.min(waitMs, this.reattachAt - Date.now())));
      return [];
    }
    if (this.lost && !this.closed) {
      console.error(`quiver ingest: source ${this.name}: the durable consumer "${this.settings.consumer}" of stream "${this.settings.stream}" is gone; making it again`);
      this.messages?.stop();
      // Messages of the gone consumer can be neither acked nor handed back: they come again from the new one.
      this.queue.length = 0;
      // Cleared first: the new consume's watch may find it gone again while this runs (a stream still being deleted).
      this.lost = false;
      this.checkedAt = Date.now();
      try {
        await this.attach();
      } catch (e) {
        this.markLost();
        throw e;
      }
    }
    if (this.queue.length === 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.queue.length === 0) await this.checkWhileIdle();
    }
    const taken = this.queue.splice(0, max);
    const out = new Array<NatsDelivery>(taken.length);
    const limit = this.settings.maxEventBytes;
    for (let i = 0; i < taken.length; i++) {
      const msg = taken[i]!;
      // msg.data is a getter making a subarray for a message with headers: read once.
      const d = { id: String(msg.seq), payload: msg.data, deliveries: msg.info.redeliveryCount, publishedAt: msg.info.timestampNanos / NS, msg };
      out[i] = d.payload.length > limit ? tooLarge(d, limit) : d;
    }
    return out;
  }

  async ack(deliveries: readonly Delivery[]): Promise<void> {
    for (const d of deliveries) (d as NatsDelivery).msg.ack();
    await this.connection?.flush();
  }

  async reject(deliveries: readonly Delivery[]): Promise<void> {
    // No reason text: servers before 2.10 ignore a `+TERM <reason>` and keep the message pending.
    for (const d of deliveries) (d as NatsDelivery).msg.term();
    await this.connection?.flush();
  }

  async retryLater(deliveries: readonly Delivery[], delayMs: number): Promise<void> {
    for (const d of deliveries) (d as NatsDelivery).msg.nak(delayMs);
    await this.connection?.flush();
  }

  async handBack(deliveries: readonly Delivery[]): Promise<void> {
    // Offered to the durable's next pull, this process's or another's.
    await this.retryLater(deliveries, 0);
  }

  async lag(): Promise<SourceLag> {
    // JetStream's num_pending counts what the stream still holds, so limits (max_msgs, max_age) never inflate it;
    // what they removed before delivery is not told per consumer filter.
    if (!this.consumer) return { pending: 0, unprocessed: null, lostUnread: null, lostPending: null };
    const info = await this.consumer.info();
    return { pending: info.num_ack_pending, unprocessed: info.num_pending, lostUnread: null, lostPending: null };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAliveTimer);
    this.wake?.();
    this.messages?.stop();
    // Messages received but not handed out go back to the server now rather than after ackWait (redelivered whatever
    // their count: MAX_DELIVER).
    for (const m of this.queue.splice(0)) m.nak();
    // What was not settled comes back after ack_wait.
    if (this.connection !== undefined) await drainOrClose(this.connection);
  }
}

/**
 * A message larger than the source's maxEventBytes: dead-lettered `too_large`
 * with its first TOO_LARGE_KEPT_BYTES (copied), never decoded or written. The
 * server's max_payload (1 MB by default) bounds what a producer can publish at
 * all; this bounds what the consumer maps and writes, as on Redis.
 */
function tooLarge(d: NatsDelivery, limit: number): NatsDelivery {
  const size = d.payload.length;
  const kept = d.payload.slice(0, TOO_LARGE_KEPT_BYTES);
  // Under a bound below TOO_LARGE_KEPT_BYTES the letter may hold it all: not cut, replayable (as on Redis). Marked cut
  // all the same, it was never replayed and read back as one byte larger than it was.
  if (kept.length === size) {
    return { ...d, payload: kept, unreadable: { reason: "too_large", path: "", error: `the message's payload is ${size} bytes, over maxEventBytes (${limit}); this letter keeps it whole` } };
  }
  return {
    ...d,
    payload: kept,
    unreadable: { reason: "too_large", path: "", error: `the message's payload is ${size} bytes, over maxEventBytes (${limit}); this letter keeps its first ${kept.length}`, cutFrom: size },
  };
}

/** Publishes payloads to a subject, waiting for JetStream's acknowledgement of each. */
export class NatsStreamPublisher implements StreamPublisher {
  private constructor(
    private readonly connection: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly subject: string,
  ) {}

  static async connect(settings: Pick<NatsSourceSettings, "servers" | "stream" | "subject">): Promise<NatsStreamPublisher> {
    const nc = await connect({ servers: natsSeedList(settings.servers), name: "quiver-ingest-publish" });
    await ensureStream(await nc.jetstreamManager(), settings.stream, [settings.subject]);
    return new NatsStreamPublisher(nc, nc.jetstream(), settings.subject);
  }

  async publish(payloads: readonly Uint8Array[]): Promise<void> {
    await Promise.all(payloads.map((p) => this.js.publish(this.subject, p)));
  }

  async close(): Promise<void> {
    await this.connection.drain().catch(() => undefined);
  }
}

/**
 * Dead letters as messages of a JetStream stream (subject `<stream>.<source>`), details in headers.
 * Connected on first use (or by `connect`): a consumer starting while the server is unreachable must not wait for
 * it here; a connection that failed is tried again by the next call.
 */
export class NatsDeadLetters implements DeadLetterQueue {
  private session: Promise<{ readonly connection: NatsConnection; readonly jsm: JetStreamManager }> | undefined;
  private closed = false;

  private readonly limits: StreamLimits;

  constructor(
    private readonly servers: string,
    private readonly stream: string,
    retention: DeadLetterRetention = DEFAULT_DEAD_LETTER_RETENTION,
  ) {
    this.limits = { maxMessages: retention.maxLetters, maxAgeMs: retention.maxAgeMs };
  }

  /** Connects now (the dead-letter CLI: an unreachable server is its error at once). */
  static async connect(servers: string, stream: string, retention?: DeadLetterRetention): Promise<NatsDeadLetters> {
    const queue = new NatsDeadLetters(servers, stream, retention);
    await queue.open();
    return queue;
  }

  private open(): Promise<{ readonly connection: NatsConnection; readonly jsm: JetStreamManager }> {
    if (this.closed) return Promise.reject(new Error(`dead-letter stream ${this.stream}: closed`));
    this.session ??= (async () => {
      const connection = await connect({ servers: natsSeedList(this.servers), name: "quiver-ingest-dead-letters", maxReconnectAttempts: -1 });
      try {
        const jsm = await connection.jetstreamManager();
        await ensureStream(jsm, this.stream, [`${this.stream}.>`], this.limits);
        return { connection, jsm };
      } catch (e) {
        await connection.close().catch(() => undefined);
        throw e;
      }
    })().catch((e: unknown) => {
      this.session = undefined;
      throw e;
    });
    return this.session;
  }

  /** JetStream discards letters past the stream's limits itself, without saying how many: undefined. */
  async add(letters: readonly NewDeadLetter[]): Promise<undefined> {
    const { connection, jsm } = await this.open();
    try {
      await this.publishAll(connection, letters);
    } catch (e) {
      if (!isNoStream(e)) throw e;
      // The stream went away under us (deleted, or the server restarted on an empty store): the source's own stream
      // is made again when its consumer is found gone; this one was only made at connect, so every letter failed from
      // then on and the events left at the server's delivery limit with none.
      await ensureStream(jsm, this.stream, [`${this.stream}.>`], this.limits);
      await this.publishAll(connection, letters);
    }
    return undefined;
  }

  private async publishAll(connection: NatsConnection, letters: readonly NewDeadLetter[]): Promise<void> {
    const js = connection.jetstream();
    const at = String(Date.now());
    // A letter is its payload plus headers: one near the server's max_payload would not fit, its publish would fail,
    // and the event would leave at the delivery limit with no letter. Such a payload is kept cut, and says so.
    const room = Math.max(1024, (connection.info?.max_payload ?? 1 << 20) - DEAD_LETTER_HEADROOM);
    await Promise.all(
      letters.map((l) => {
        const h = headers();
        const cut = l.payload.length > room;
        const payload = cut ? l.payload.subarray(0, room) : l.payload;
        const error = l.error.replace(/[\r\n]+/g, " ").slice(0, MAX_ERROR_CHARS);
        h.set(HEADER_OF.source, l.source);
        h.set(HEADER_OF.reason, l.reason);
        h.set(HEADER_OF.path, l.path.slice(0, MAX_ERROR_CHARS));
        h.set(HEADER_OF.error, cut ? `${error} (payload cut from ${l.cutFrom ?? l.payload.length} to ${room} bytes to fit the dead-letter stream)` : error);
        h.set(HEADER_OF.origin, l.origin);
        h.set(HEADER_OF.at, at);
        // The event's size, when the payload is only its first bytes: such a letter is not replayed (replay.ts).
        if (cut || l.cutFrom !== undefined) h.set(HEADER_OF.cut, String(l.cutFrom ?? l.payload.length));
        return js.publish(`${this.stream}.${l.source}`, payload, { headers: h });
      }),
    );
  }

  async list(limit: number, filter: LetterFilter = {}): Promise<DeadLetter[]> {
    const { jsm } = await this.open();
    const info = await jsm.streams.info(this.stream);
    const out: DeadLetter[] = [];
    // An empty stream reports first_seq 0, which is not a message to fetch.
    if (info.state.messages === 0) return out;
    for (let seq = Math.max(1, info.state.first_seq); seq <= info.state.last_seq && out.length < limit; seq++) {
      let m: Awaited<ReturnType<JetStreamManager["streams"]["getMessage"]>>;
      try {
        m = await jsm.streams.getMessage(this.stream, { seq });
      } catch (e) {
        if (isNotFound(e)) continue; // deleted (replayed) message
        throw e;
      }
      const h = (name: DeadLetterField) => m.header.get(HEADER_OF[name]) ?? "";
      if (!letterPasses(filter, h("source"), h("reason"))) continue;
      out.push(deadLetterOf(String(seq), h, m.data));
    }
    return out;
  }

  async remove(ids: readonly string[]): Promise<void> {
    const { jsm } = await this.open();
    for (const id of ids) await jsm.streams.deleteMessage(this.stream, Number(id));
  }

  /**
   * Bounded: a connect still in flight is waited for at most DRAIN_MS (a
   * stalled server held close() for nats.js's 20 s connect timeout, past a
   * shutdown's budget); a session that connects later is closed then.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.session?.catch(() => undefined);
    if (pending === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const session = await Promise.race([pending, new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), DRAIN_MS)))]);
    clearTimeout(timer);
    if (session === "late") {
      void pending.then((s) => s?.connection.close().catch(() => undefined));
      return;
    }
    if (session !== undefined) await drainOrClose(session.connection);
  }
}
