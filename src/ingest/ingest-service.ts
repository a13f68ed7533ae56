import type { KvNode } from "../kv/kv-node.ts";
import type { PushService } from "../serving/index.ts";
import type { Registry } from "../registry/index.ts";
import { type CompiledSource, compileSourcesDef } from "./compile-sources.ts";
import type { DeadLetterQueue } from "./dead-letters.ts";
import { openDeadLetters, openStreamSource } from "./engines.ts";
import { IdempotencyWindow } from "./idempotency-window.ts";
import type { IngestMetrics } from "./ingest-metrics.ts";
import { type ConsumerOptions, type ConsumerStatus, StreamConsumer } from "./stream-consumer.ts";

export interface IngestDeps {
  readonly push: PushService;
  /** Read for the stored event times: the store itself, not a cache in front of it (a cached copy may outlive a lost row). */
  readonly store: KvNode;
  /** Registered once per metrics registry (a name registers once). */
  readonly metrics: IngestMetrics;
  /** This process's consumer name in every group (host and pid by default): scale out by running more. */
  readonly consumerName: string;
  readonly consumerOptions?: ConsumerOptions;
}

/**
 * How long stop() waits for the dead-letter queues to close: each bounds its
 * own close (NATS: a connect in flight waited for 2 s, a drain 2 s; Redis: QUIT
 * up to its 5 s command timeout), this bounds them all whatever they do.
 */
const DEAD_LETTERS_CLOSE_MS = 5000;

/** Whether `work` settled within `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([work.then(() => true, () => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return done;
}

/** One consumer per source in this process; started together, stopped together. */
export class IngestService {
  private constructor(
    private readonly sources: readonly CompiledSource[],
    private readonly consumers: readonly StreamConsumer[],
    private readonly deadLetterQueues: readonly DeadLetterQueue[],
  ) {}

  /**
   * Starts one consumer per source. Returns once each has started or has
   * waited `startWaitMs` for its engine (the rest goes on in the background:
   * an unreachable engine does not stop a server from serving lookups);
   * throws what an engine said contradicts the sources file.
   */
  static async start(sources: readonly CompiledSource[], deps: IngestDeps): Promise<IngestService> {
    const metrics = deps.metrics;
    // One window for every source, its keys scoped per source (dedupScope: sources sharing one say so): the longest and largest asked for.
    const windowMs = Math.max(0, ...sources.map((s) => s.dedupWindowMs));
    const maxBytes = Math.max(0, ...sources.map((s) => s.dedupMaxBytes));
    const seen = new IdempotencyWindow(windowMs, { maxBytes }, Date.now, (view) => metrics.dedupCutShort(view));
    metrics.watchDedup(() => seen.stats());
    const consumers: StreamConsumer[] = [];
    const queues: DeadLetterQueue[] = [];
    try {
      for (const compiled of sources) {
        // Connected on first use: neither waits for an engine that cannot be reached.
        const deadLetters = await openDeadLetters(compiled, { connectNow: false });
        queues.push(deadLetters);
        const source = await openStreamSource(compiled, deps.consumerName);
        consumers.push(new StreamConsumer({ source, compiled, deadLetters, push: deps.push, store: deps.store, metrics, seen }, deps.consumerOptions));
      }
      const started = await Promise.allSettled(consumers.map((c) => c.start()));
      const refused = started.find((r) => r.status === "rejected");
      if (refused !== undefined) throw (refused as PromiseRejectedResult).reason;
    } catch (e) {
      await new IngestService(sources, consumers, queues).stop();
      throw e;
    }
    return new IngestService(sources, consumers, queues);
  }

  /**
   * The running sources' mappings compiled against another registry (a
   * reload's, before it is swapped in): throws QuiverError `invalid_sources`
   * naming every mapping it would break (a view or feature gone, a type a
   * mapping's constant no longer fits); changes nothing. `remap` hands the
   * result to the consumers.
   */
  compileFor(registry: Registry): CompiledSource[] {
    return compileSourcesDef({ sources: this.sources.map((s) => s.definition) }, registry);
  }

  /** Each consumer maps its next batches with `compiled`'s mappings (from `compileFor`, in the same order). */
  remap(compiled: readonly CompiledSource[]): void {
    this.consumers.forEach((c, i) => {
      c.remap(compiled[i]!.mappings);
    });
  }

  status(): ConsumerStatus[] {
    return this.consumers.map((c) => c.status());
  }

  /** Graceful: each consumer finishes and acks its batch in hand. */
  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    await Promise.all(this.deadLetterQueues.map((q) => within(q.close(), DEAD_LETTERS_CLOSE_MS)));
  }
}
