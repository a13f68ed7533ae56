import type { CounterHandle, HistogramHandle, MetricsRegistry } from "../ops/index.ts";
import type { WindowStats } from "./idempotency-window.ts";
import type { SourceLag } from "./stream-source.ts";

/** Freshness buckets in seconds: 1 ms .. 5 min (event time → visible to lookups). */
const FRESHNESS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** What one source's consumer counts; handles are resolved once, the hot loop only increments. */
export interface SourceCounters {
  readonly consumed: CounterHandle;
  readonly written: CounterHandle;
  readonly duplicate: CounterHandle;
  readonly late: CounterHandle;
  readonly filtered: CounterHandle;
  readonly deadLettered: CounterHandle;
  /** Older letters the dead-letter stream's retention removed after this source's adds (Redis; JetStream does not say). */
  readonly lettersTrimmed: CounterHandle;
  readonly storeRetries: CounterHandle;
  readonly batchSeconds: HistogramHandle;
  deadLetter(reason: string): CounterHandle;
  freshness(view: string): HistogramHandle;
}

/**
 * The streaming writers' metrics, registered once per process on the shared
 * registry: events by outcome, dead letters by reason, batch latency,
 * freshness per view and each source's lag (sampled by its consumer).
 */
export class IngestMetrics {
  private readonly events;
  private readonly deadLetters;
  private readonly trimmed;
  private readonly retries;
  private readonly batches;
  private readonly freshness;
  private readonly lags = new Map<string, SourceLag>();
  private readonly cutShort;
  private dedupStats: () => readonly WindowStats[] = () => [];

  constructor(metrics: MetricsRegistry) {
    this.events = metrics.counter("quiver_ingest_events_total", "Stream events by source and outcome (consumed, written, duplicate, late, filtered, dead_letter).", ["source", "outcome"]);
    this.deadLetters = metrics.counter("quiver_ingest_dead_letters_total", "Events sent to the dead-letter stream, by source and reason.", ["source", "reason"]);
    this.trimmed = metrics.counter(
      "quiver_ingest_dead_letters_trimmed_total",
      "Older dead letters removed by the dead-letter stream's retention (deadLetters.maxLetters / maxAge) after this source's adds; Redis only (JetStream discards them without saying).",
      ["source"],
    );
    this.retries = metrics.counter("quiver_ingest_store_retries_total", "Store writes retried or deferred after a retryable failure.", ["source"]);
    this.batches = metrics.histogram("quiver_ingest_batch_seconds", "Time to map, write and acknowledge one batch.", ["source"]);
    this.freshness = metrics.histogram("quiver_ingest_freshness_seconds", "Event time to visible to lookups, per feature view.", ["view"], FRESHNESS_BUCKETS);
    this.cutShort = metrics.counter(
      "quiver_ingest_dedup_cut_short_total",
      "Times a view's idempotency window turned over early, at its key or byte cap: duplicates older than quiver_ingest_dedup_span_seconds are no longer caught.",
      ["view"],
    );
    metrics.gauge("quiver_ingest_dedup_keys", "Idempotency keys the dedup window holds, per view.", () => this.dedupStats().map((s) => ({ labels: { view: s.view }, value: s.keys })));
    metrics.gauge("quiver_ingest_dedup_bytes", "Estimated heap bytes of the dedup window's keys, per view (capped by dedupMaxBytes).", () =>
      this.dedupStats().map((s) => ({ labels: { view: s.view }, value: s.bytes })),
    );
    metrics.gauge("quiver_ingest_dedup_span_seconds", "How far back the dedup window remembers keys, per view (at least half of dedupWindow unless a cap cut it short).", () =>
      this.dedupStats().map((s) => ({ labels: { view: s.view }, value: s.spanMs / 1000 })),
    );
    metrics.gauge(
      "quiver_ingest_lost",
      "Messages the engine removed (trimmed, deleted) before they were written: when=unread, before the group read them (the group's total, Redis); when=pending, found gone from this pod's pending list.",
      () =>
        [...this.lags].flatMap(([source, lag]) => [
          ...(lag.lostUnread === null ? [] : [{ labels: { source, when: "unread" }, value: lag.lostUnread }]),
          ...(lag.lostPending === null ? [] : [{ labels: { source, when: "pending" }, value: lag.lostPending }]),
        ]),
    );
    metrics.gauge("quiver_ingest_lag", "Messages the engine still owes a source's group: unprocessed (never delivered) and pending (unacknowledged).", () =>
      [...this.lags].flatMap(([source, lag]) => [
        { labels: { source, kind: "pending" }, value: lag.pending },
        ...(lag.unprocessed === null ? [] : [{ labels: { source, kind: "unprocessed" }, value: lag.unprocessed }]),
      ]),
    );
  }

  forSource(source: string): SourceCounters {
    const outcome = (o: string) => this.events.labels(source, o);
    const byView = new Map<string, HistogramHandle>();
    return {
      consumed: outcome("consumed"),
      written: outcome("written"),
      duplicate: outcome("duplicate"),
      late: outcome("late"),
      filtered: outcome("filtered"),
      deadLettered: outcome("dead_letter"),
      lettersTrimmed: this.trimmed.labels(source),
      storeRetries: this.retries.labels(source),
      batchSeconds: this.batches.labels(source),
      deadLetter: (reason) => this.deadLetters.labels(source, reason),
      freshness: (view) => {
        let h = byView.get(view);
        if (!h) {
          h = this.freshness.labels(view);
          byView.set(view, h);
        }
        return h;
      },
    };
  }

  /** Reports the dedup window through the gauges above. */
  watchDedup(stats: () => readonly WindowStats[]): void {
    this.dedupStats = stats;
  }

  /** A view's window turned over at a cap (IdempotencyWindow's onCutShort). */
  dedupCutShort(view: string): void {
    this.cutShort.labels(view).inc();
  }

  recordLag(source: string, lag: SourceLag): void {
    this.lags.set(source, lag);
  }
}
