/**
 * The seam between consumers and streaming engines. Redis Streams (consumer
 * groups) and NATS JetStream (durable pull consumers) implement it; the
 * consumer loop and the contract suite (test/stream-source-contract.ts) only
 * see this.
 *
 * Delivery is at least once: a message stays owed to the group until `ack`;
 * a consumer that dies leaves it to be taken over by another consumer of the
 * same group/durable after the engine's idle timeout.
 */

/**
 * Most bytes of an event a `too_large` letter keeps: enough to tell whose it
 * is. Letters are kept by the 100,000 (DEFAULT_DEAD_LETTER_RETENTION): whole,
 * a producer's run of 50 MB entries would have filled the engine carrying them.
 */
export const TOO_LARGE_KEPT_BYTES = 4096;

/** One delivered message. Implementations may extend it with their own handle. */
export interface Delivery {
  /** Engine id: Redis entry id, JetStream stream sequence. */
  readonly id: string;
  readonly payload: Uint8Array;
  /** How many times this message has been delivered, this time included (1 = first). */
  readonly deliveries: number;
  /**
   * When the engine took the message (ms since the epoch): JetStream's stored
   * timestamp, a Redis entry id's time. Unlike delivery counts it survives a
   * restart or a takeover, so a message retried for longer than `retryFor` is
   * dead-lettered whoever reads it. Undefined when the engine cannot tell (a
   * Redis id a producer chose, `1-1`, is no time): the consumer then counts
   * from when it first saw the message come back (a later delivery).
   */
  readonly publishedAt?: number;
  /**
   * Set when the message holds no payload where the source reads it (a Redis
   * entry without the source's field), or is larger than the source's
   * `maxEventBytes` (`too_large`): the event is dead-lettered with this
   * error, `path` naming where the payload was expected, and `payload` holds
   * what the message did carry, for inspection (a too large one's first
   * bytes, `cutFrom` giving its size when they are not all of it).
   */
  readonly unreadable?: { readonly reason?: "undecodable" | "too_large"; readonly path: string; readonly error: string; readonly cutFrom?: number };
}

/**
 * Work an engine still owes this source's group (unread, and read but
 * unacknowledged), and what it lost before the group could write it.
 */
export interface SourceLag {
  /** Messages not yet delivered to the group (`null` when the engine cannot tell). */
  readonly unprocessed: number | null;
  /** Delivered but not acknowledged. */
  readonly pending: number;
  /**
   * Messages the engine removed (a length limit's trim, a delete) before the
   * group read them: never delivered, never written. The group's total, the
   * same on every pod; `null` when the engine cannot tell.
   */
  readonly lostUnread: number | null;
  /**
   * Messages this process found removed while they were pending (delivered,
   * not acknowledged, then read again for a retry or a takeover): never
   * written. `null` when the engine cannot tell.
   */
  readonly lostPending: number | null;
}

/**
 * The engine answered, and what it holds contradicts the sources file (a
 * durable consumer that filters another subject): found at start, the start
 * is refused with this message; any other failure of `start` (the engine
 * unreachable) is retried in the background.
 */
export class SourceConfigError extends Error {}

export interface StreamSource {
  readonly name: string;
  readonly engine: "redis" | "nats";
  /** Creates the group / durable consumer when missing; safe to call from every pod. Throws SourceConfigError for a contradiction. */
  start(): Promise<void>;
  /**
   * Up to `max` messages: pending ones this consumer must take over first,
   * then new ones. Waits at most `waitMs` when nothing is there (then `[]`).
   */
  read(max: number, waitMs: number): Promise<readonly Delivery[]>;
  /** Done with these: the store has them (or they went to dead letters). */
  ack(deliveries: readonly Delivery[]): Promise<void>;
  /** Never again: these are in dead letters now (Redis: XACK; NATS: term). */
  reject(deliveries: readonly Delivery[]): Promise<void>;
  /** Not now: deliver again after `delayMs` (a retryable store failure). */
  retryLater(deliveries: readonly Delivery[], delayMs: number): Promise<void>;
  /**
   * Not this consumer's to write (its store refuses for a reason of its own,
   * a stale ring): let another consumer of the group take them now (Redis:
   * claimable at once and not read again by this one for a while; NATS:
   * nak'd without delay).
   */
  handBack(deliveries: readonly Delivery[]): Promise<void>;
  lag(): Promise<SourceLag>;
  /** Wakes a waiting `read` and releases connections; the batch in hand must be acked first. */
  close(): Promise<void>;
}

/** Appends payloads to a source's stream (producer, dead-letter replay). */
export interface StreamPublisher {
  publish(payloads: readonly Uint8Array[]): Promise<void>;
  close(): Promise<void>;
}
