import type { ChangeEvent, ChangeFeed, ChangeListener, FeedState, InvalidationScope } from "./change-feed.ts";

/**
 * The in-process feed: delivers synchronously to this process's listeners.
 * It cannot lose events, so it never reports a gap. It is also the local half
 * of shared feeds, which deliver what arrives from other pods through it.
 */
export class LocalChangeFeed implements ChangeFeed {
  private listeners: ChangeListener[] = [];
  private published = 0;
  private received = 0;
  private gaps = 0;

  readonly hearing = true;

  constructor(readonly origin: string) {}

  publish(events: readonly ChangeEvent[]): void {
    if (events.length === 0) return;
    this.published += events.length;
    this.deliver(events, this.origin);
  }

  invalidate(scope: InvalidationScope): void {
    this.deliverInvalidation(scope, this.origin);
  }

  /** Hands events to every listener; one listener's failure does not starve the others. */
  deliver(events: readonly ChangeEvent[], origin: string): void {
    if (origin !== this.origin) this.received += events.length;
    for (const l of this.listeners) {
      try {
        l.onChanges(events, origin);
      } catch (e) {
        console.error("quiver: change-feed listener failed", e);
      }
    }
  }

  deliverInvalidation(scope: InvalidationScope, origin: string): void {
    for (const l of this.listeners) {
      try {
        l.onInvalidate(scope, origin);
      } catch (e) {
        console.error("quiver: change-feed listener failed", e);
      }
    }
  }

  deliverGap(reason: string): void {
    this.gaps++;
    for (const l of this.listeners) {
      try {
        l.onGap(reason);
      } catch (e) {
        console.error("quiver: change-feed listener failed", e);
      }
    }
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  state(): FeedState {
    return { kind: "local", connected: true, published: this.published, received: this.received, gaps: this.gaps };
  }

  close(): Promise<void> {
    this.listeners = [];
    return Promise.resolve();
  }
}
