import { LRUCache } from "lru-cache";

/**
 * Idempotency keys seen recently, per feature view (so two sources that carry
 * the same event id for one view dedupe across sources). Bounded in time and
 * in count: the oldest keys go first when `maxKeys` is reached. Keys are
 * remembered only after their batch was written, so a failed write is retried.
 */
export class IdempotencyWindow {
  private readonly seen: LRUCache<string, true>;

  constructor(windowMs: number, maxKeys = 1_000_000) {
    this.seen = new LRUCache<string, true>({ max: maxKeys, ttl: Math.max(1, windowMs), ttlAutopurge: false, updateAgeOnGet: false });
  }

  has(view: string, key: string): boolean {
    return this.seen.has(`${view}\u0000${key}`);
  }

  remember(view: string, key: string): void {
    this.seen.set(`${view}\u0000${key}`, true);
  }

  get size(): number {
    return this.seen.size;
  }
}
