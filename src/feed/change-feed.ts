/**
 * The change feed: every write the store acknowledged becomes an event that
 * other parts of this pod, and other pods, subscribe to (cache invalidation,
 * the claim index, freshness metrics). Implementations: in-process
 * (`LocalChangeFeed`) and shared across pods (over Redis pub/sub: `RedisChangeFeed`).
 */

/** One acknowledged change to one storage key. */
export interface ChangeEvent {
  /** The storage key (view prefix + entity key) that changed. */
  readonly key: string;
  /** Event time of the written row in ms (for a delete: when it was deleted). */
  readonly ts: number;
  readonly op: "put" | "delete";
}

/** What a namespace invalidation drops: one feature view's entries, or everything. */
export type InvalidationScope = { readonly view: string } | { readonly all: true };

/** A subscriber. Every callback is synchronous and must not throw; heavy work is queued by the subscriber. */
export interface ChangeListener {
  /** Changes in the order they were acknowledged; `origin` is the id of the pod that wrote them. */
  onChanges(events: readonly ChangeEvent[], origin: string): void;
  /** A view (or everything) must be dropped from caches and derived state. */
  onInvalidate(scope: InvalidationScope, origin: string): void;
  /**
   * Events may have been missed (the feed's connection broke, or its buffer
   * overflowed): anything derived from earlier events must be rebuilt or dropped.
   */
  onGap(reason: string): void;
}

export interface FeedState {
  /** "local" feeds are always connected; shared ones report their link. */
  readonly kind: "local" | "redis";
  readonly connected: boolean;
  readonly published: number;
  readonly received: number;
  readonly gaps: number;
}

export interface ChangeFeed {
  /** This pod's id, carried as the origin of what it publishes. */
  readonly origin: string;
  /** Hearing other pods' changes now (a local feed always is): while not, caches cannot trust what they hold for long. */
  readonly hearing: boolean;
  /** Delivers to local listeners at once (read-your-writes), then to other pods. */
  publish(events: readonly ChangeEvent[]): void;
  invalidate(scope: InvalidationScope): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: ChangeListener): () => void;
  state(): FeedState;
  close(): Promise<void>;
}
