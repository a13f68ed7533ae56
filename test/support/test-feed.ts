import type { ChangeEvent, ChangeFeed, ChangeListener, FeedState } from "../../src/feed/index.ts";

/** A change feed under the test's control: what it delivers and whether it says it is connected. */
export class TestFeed implements ChangeFeed {
  readonly hearing = true;
  readonly origin = "test";
  listener: ChangeListener | undefined;
  connected = true;
  publish(events: readonly ChangeEvent[]): void {
    this.listener?.onChanges(events, this.origin);
  }
  invalidate(): void {}
  subscribe(l: ChangeListener): () => void {
    this.listener = l;
    return () => {
      this.listener = undefined;
    };
  }
  state(): FeedState {
    return { kind: "redis", connected: this.connected, published: 0, received: 0, gaps: 0 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
