import { ExponentialBackoff, handleWhen, retry } from "cockatiel";
import { BatchMapper } from "./batch-mapper.ts";
import { BatchWriter, type WriteFault } from "./batch-writer.ts";
import type { CompiledSource } from "./compile-sources.ts";
import type { DeadLetterQueue, NewDeadLetter } from "./dead-letters.ts";
import type { IdempotencyWindow } from "./idempotency-window.ts";
import type { IngestMetrics, SourceCounters } from "./ingest-metrics.ts";
import type { KvNode } from "../kv/kv-node.ts";
import { QuiverError } from "../errors/index.ts";
import type { PushService } from "../serving/index.ts";
import { type Delivery, SourceConfigError, type SourceLag, type StreamSource } from "./stream-source.ts";

/**
 * `refused`: the engine answered and contradicts the sources file (SourceConfigError) after `start` had returned;
 * asked again every `pauseMs.max` (someone may fix the engine's side), never consumed meanwhile.
 */
export type ConsumerState = "starting" | "running" | "retrying" | "paused" | "reconnecting" | "refused" | "stopping" | "stopped";

export interface ConsumerOptions {
  /** How long a read waits for new messages (bounds shutdown latency). */
  readonly readWaitMs?: number;
  /** In-place write attempts before the batch is handed back to the engine. */
  readonly writeAttempts?: number;
  /** First and longest pause after the store refused a batch. */
  readonly pauseMs?: { readonly initial: number; readonly max: number };
  /** How often the engine's lag is sampled for metrics and /readyz. */
  readonly lagIntervalMs?: number;
  /**
   * After `stop`, how long the batch in hand may still take to be written
   * (default 5 s); past it the write is given up and the batch left to the
   * engine, unacknowledged (a stalled store once held a SIGTERM for 41 s,
   * past Kubernetes' 30 s grace).
   */
  readonly stopGraceMs?: number;
  /**
   * How long `start` waits for the engine (default 2 s) before it returns and
   * the consumer goes on connecting in the background, `starting` or
   * `reconnecting` on /readyz: a server whose stream engine was unreachable
   * used to fail its start, and its lookups went down with it.
   */
  readonly startWaitMs?: number;
  /** Crash testing only: hooks into the store write (see WriteFault). */
  readonly fault?: WriteFault;
  readonly clock?: () => number;
}

export interface ConsumerDeps {
  readonly source: StreamSource;
  readonly compiled: CompiledSource;
  readonly deadLetters: DeadLetterQueue;
  readonly push: PushService;
  /** The store the push path writes to, read to tell duplicates from late events. */
  readonly store: KvNode;
  readonly metrics: IngestMetrics;
  readonly seen: IdempotencyWindow;
}

export interface ConsumerStatus {
  readonly source: string;
  readonly engine: string;
  readonly state: ConsumerState;
  readonly consumed: number;
  readonly written: number;
  readonly duplicate: number;
  readonly late: number;
  readonly filtered: number;
  readonly deadLettered: number;
  readonly lag: SourceLag | null;
  readonly lastError: string | null;
}

/** Dead-lettered message ids kept while their settling is owed (StreamConsumer.lettered). */
const MAX_LETTERED = 10_000;
/**
 * After the shutdown grace, how long stop waits for the batch in hand to be
 * handed back, then for the engine's lag and its connections to close: an
 * engine that stopped answering (SIGSTOP, a partition) held stop() forever.
 */
const STOP_SLACK_MS = 1000;

/** Whether `work` settled within `ms` (its outcome is not waited for past that). */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([work.then(() => true, () => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return done;
}

/** Message ids whose failures are counted (StreamConsumer.failures); past it the oldest count is forgotten. */
const MAX_COUNTED = 100_000;

const isRetryable = (e: unknown): boolean => (e as { retryable?: unknown } | null)?.retryable === true;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * One source's consumer: read a batch, map it, write it through the push path
 * in one store round trip, dead-letter what cannot be written, then ack. One
 * batch in flight at a time, so a slow or refusing store slows reads instead
 * of filling memory; after a retryable failure the batch is retried in place
 * with backoff, then handed back to the engine (nak with delay / left pending)
 * while the consumer pauses. Stopping finishes and acks the batch in hand.
 */
export class StreamConsumer {
  private state: ConsumerState = "starting";
  private lastError: string | null = null;
  private lag: SourceLag | null = null;
  private readonly counters: SourceCounters;
  /** Replaced by `remap` after a registry reload; a batch in hand keeps the rows it was mapped to. */
  private mapper: BatchMapper;
  private readonly writer: BatchWriter;
  private readonly stopping = new AbortController();
  /** Aborted `stopGraceMs` after `stop`: the batch in hand stops waiting for the store. */
  private readonly givingUp = new AbortController();
  private loop: Promise<void> | undefined;
  private lagTimer: ReturnType<typeof setInterval> | undefined;
  private pauseMs: number;
  private readonly retryPolicy;
  private readonly options: Required<Omit<ConsumerOptions, "fault">>;
  /**
   * Messages (by id) this consumer put in dead letters whose settling with the
   * engine then failed: they come back (the batch is handed back whole), and
   * are rejected again without a second letter. Only batches whose ack failed
   * leave ids here, and settling them takes them out; bounded all the same.
   */
  private readonly lettered = new Set<string>();
  /**
   * Per message (by id), the handlings this consumer saw fail for a reason
   * that may be the message's own (a store error not marked retryable): at
   * `maxDeliver` it is dead-lettered. Retryable store errors (unavailable, an
   * open breaker, a stale ring) are not counted: the engine's delivery count
   * also grows with every retry during an outage (Redis re-reads its pending
   * entries each time), and counted against it, a 20 s store outage
   * dead-lettered 50 valid events. A handling that threw (a bug) counts too.
   * Taken out once the message is settled. The last error is kept for the
   * letter of a message retried past `retryFor` (see expired).
   */
  private readonly failures = new Map<string, { readonly count: number; readonly error: string }>();
  /**
   * The last batch's write was refused for a reason not the events' own (a
   * store outage): while so, no message is dead-lettered for its age
   * (`retryFor`), an outage being nobody's message's fault.
   */
  private storeRefusing = false;

  constructor(
    private readonly deps: ConsumerDeps,
    options: ConsumerOptions = {},
  ) {
    this.options = {
      readWaitMs: options.readWaitMs ?? 500,
      writeAttempts: options.writeAttempts ?? 3,
      pauseMs: options.pauseMs ?? { initial: 200, max: 10_000 },
      lagIntervalMs: options.lagIntervalMs ?? 5000,
      stopGraceMs: options.stopGraceMs ?? 5000,
      startWaitMs: options.startWaitMs ?? 2000,
      clock: options.clock ?? Date.now,
    };
    this.pauseMs = this.options.pauseMs.initial;
    this.counters = deps.metrics.forSource(deps.compiled.name);
    this.mapper = new BatchMapper(deps.compiled, deps.seen);
    this.writer = new BatchWriter(deps.compiled.name, deps.compiled.dedupScope, deps.push, deps.store, deps.seen, this.counters, this.options.clock, options.fault);
    this.retryPolicy = retry(handleWhen(isRetryable), {
      maxAttempts: Math.max(0, this.options.writeAttempts - 1),
      backoff: new ExponentialBackoff({ initialDelay: 25, maxDelay: 1000 }),
    });
    this.retryPolicy.onRetry(() => {
      this.counters.storeRetries.inc();
      this.state = "retrying";
    });
  }

  /**
   * Creates the group/consumer if needed and starts consuming in the
   * background. Waits for the engine at most `startWaitMs`; while it cannot be
   * reached the consumer tries again with backoff (`reconnecting`, the error
   * on /readyz). Throws only what the engine says contradicts the sources
   * file (SourceConfigError), when it says so within that wait.
   */
  async start(): Promise<void> {
    let settled!: () => void;
    const firstOutcome = new Promise<void>((resolve) => {
      settled = resolve;
    });
    this.loop = this.connectThenRun(settled);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([firstOutcome, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.startWaitMs)))]);
    clearTimeout(timer);
    this.startReturned = true;
    if (this.refused !== undefined) {
      await this.loop;
      clearInterval(this.lagTimer);
      await this.deps.source.close().catch(() => undefined);
      this.state = "stopped";
      throw this.refused;
    }
  }

  private startReturned = false;
  /** Set when the engine refused this source's settings before `start` returned. */
  private refused: Error | undefined;

  /** Starts the source, again and again with backoff while the engine cannot be reached, then consumes. */
  private async connectThenRun(settled: () => void): Promise<void> {
    const signal = this.stopping.signal;
    let logged = "";
    while (!signal.aborted) {
      try {
        await this.deps.source.start();
        break;
      } catch (e) {
        if (e instanceof SourceConfigError && !this.startReturned) {
          this.refused = e;
          settled();
          return;
        }
        const message = (e as Error)?.message ?? String(e);
        if (signal.aborted) {
          await this.deps.source.close().catch(() => undefined);
          return;
        }
        if (e instanceof SourceConfigError) {
          // Not an engine out of reach (it answered): shown as what it is, not `reconnecting`, and asked again slowly.
          this.state = "refused";
          this.lastError = `start refused: ${message}`;
          if (message !== logged) console.error(`quiver ingest: source ${this.deps.compiled.name}: start refused: ${message}`);
          logged = message;
          settled();
          await sleep(this.options.pauseMs.max, signal);
          continue;
        }
        this.state = "reconnecting";
        this.lastError = `start: ${message}`;
        if (message !== logged) console.error(`quiver ingest: source ${this.deps.compiled.name}: cannot start yet, trying again: ${message}`);
        logged = message;
        settled();
        await sleep(this.nextPause(), signal);
      }
    }
    settled();
    if (signal.aborted) {
      // stop() may have closed the source before this start finished (it does not wait for a hung connect): the
      // source just connected is closed again, or it would consume with no one to handle what it pulls.
      await this.deps.source.close().catch(() => undefined);
      return;
    }
    this.pauseMs = this.options.pauseMs.initial;
    this.state = "running";
    this.lastError = null;
    this.sampleLag();
    await this.run();
  }

  private sampleLag(): void {
    const sample = () => {
      this.deps.source.lag().then(
        (lag) => {
          this.lag = lag;
          this.deps.metrics.recordLag(this.deps.compiled.name, lag);
        },
        () => undefined,
      );
    };
    sample();
    this.lagTimer = setInterval(sample, this.options.lagIntervalMs);
    this.lagTimer.unref?.();
  }

  /** Finishes and acks the batch in hand, then closes the source. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopping";
    this.stopping.abort();
    clearInterval(this.lagTimer);
    const grace = setTimeout(() => this.givingUp.abort(), this.options.stopGraceMs);
    try {
      if (!(await within(this.loop ?? Promise.resolve(), this.options.stopGraceMs + STOP_SLACK_MS))) {
        this.lastError = "stop: the stream engine did not answer; stopped without it (what this consumer held is left to the engine)";
        console.error(`quiver ingest: source ${this.deps.compiled.name}: ${this.lastError}`);
      }
    } finally {
      clearTimeout(grace);
    }
    const lag = this.deps.source.lag().then((l) => {
      this.lag = l;
    });
    await within(lag, STOP_SLACK_MS);
    await within(this.deps.source.close(), STOP_SLACK_MS);
    this.state = "stopped";
  }

  /**
   * Mappings compiled against a reloaded registry (IngestService.compileFor),
   * used from the next batch on: the views' current versions and types. The
   * batch in hand, already mapped, is written as it was.
   */
  remap(mappings: CompiledSource["mappings"]): void {
    this.mapper = new BatchMapper({ ...this.deps.compiled, mappings }, this.deps.seen);
  }

  status(): ConsumerStatus {
    const c = this.counters;
    return {
      source: this.deps.compiled.name,
      engine: this.deps.source.engine,
      state: this.state,
      consumed: c.consumed.value,
      written: c.written.value,
      duplicate: c.duplicate.value,
      late: c.late.value,
      filtered: c.filtered.value,
      deadLettered: c.deadLettered.value,
      lag: this.lag,
      lastError: this.lastError,
    };
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    const batchSize = this.deps.compiled.batchSize;
    while (!signal.aborted) {
      let batch: readonly Delivery[];
      try {
        batch = await this.deps.source.read(batchSize, this.options.readWaitMs);
      } catch (e) {
        if (signal.aborted) break;
        this.state = "reconnecting";
        this.lastError = `read: ${(e as Error).message}`;
        await sleep(this.nextPause(), signal);
        continue;
      }
      if (this.state === "reconnecting") {
        // The engine answers again: a read that found nothing says so as well as a batch would.
        this.state = "running";
        this.lastError = null;
      }
      if (batch.length === 0) continue;
      try {
        await this.handle(batch);
      } catch (e) {
        // A bug, not an outcome: keep the messages owed (they come back) and keep the consumer alive. Counted as a
        // failure that may be the messages' own: uncounted, a message that made handling throw came back forever.
        console.error(`quiver ingest: source ${this.deps.compiled.name}: unexpected: ${(e as Error)?.stack ?? String(e)}`);
        await this.deferBatch(batch, [], e, "unexpected");
      }
    }
  }

  private nextPause(): number {
    const ms = this.pauseMs;
    this.pauseMs = Math.min(this.options.pauseMs.max, this.pauseMs * 2);
    return ms;
  }

  /** Never throws: a batch ends acked (written or dead-lettered) or handed back for later. */
  private async handle(batch: readonly Delivery[]): Promise<void> {
    const started = performance.now();
    const expired = this.expired(batch);
    const live = expired.length === 0 ? batch : batch.filter((d) => !expired.some((x) => x.delivery === d));
    const mapped = this.mapper.map(live);
    const prepared = this.writer.prepare(mapped.groups);
    const dead = [...expired, ...mapped.dead, ...prepared.dead];
    try {
      const giveUp = this.givingUp.signal;
      const result = await untilAborted(
        this.retryPolicy.execute(({ signal }) => this.writer.write(prepared, signal), giveUp),
        giveUp,
      );
      this.storeRefusing = false;
      // Counted once the batch is written: a batch the store refused comes back, and its events were counted
      // consumed (and its duplicates, filtered events) on every delivery (200 events, 570 consumed).
      this.counters.consumed.inc(batch.length);
      this.counters.written.inc(result.written);
      this.counters.duplicate.inc(result.duplicate + mapped.duplicate + (prepared.repeated ?? 0));
      this.counters.filtered.inc(mapped.filtered);
      this.counters.late.inc(result.late);
    } catch (e) {
      await this.deferBatch(batch, dead, e, "store", { wrote: new Set(prepared.from), skipped: mapped.skipped, filtered: mapped.filtered, duplicate: mapped.duplicate });
      return;
    }
    try {
      await this.deadLetter(dead);
      await this.settle(batch, dead);
      this.settled(dead);
      this.forgetFailures(batch);
    } catch (e) {
      // Written but not acknowledged: redelivery finds the rows stored and counts duplicates, and the letters
      // already added are not added again (lettered).
      this.lastError = `ack: ${(e as Error).message}`;
      // Paused, as after a refused write: the next settled batch clears the error /readyz shows.
      this.state = "paused";
      await this.deps.source.retryLater(batch, this.pauseMs).catch(() => undefined);
      await sleep(this.nextPause(), this.stopping.signal);
      return;
    }
    this.pauseMs = this.options.pauseMs.initial;
    if (this.state === "retrying" || this.state === "paused" || this.state === "reconnecting") {
      this.state = "running";
      // Recovered: readiness shows no stale error beside a running consumer.
      this.lastError = null;
    }
    this.counters.batchSeconds.observe((performance.now() - started) / 1000);
  }

  /**
   * The store refused the batch: hand it back to the engine for later and
   * pause. When the refusal may be the messages' own fault (not a retryable
   * store error), each message's failures are counted, and one that has failed
   * `maxDeliver` times is dead-lettered with the last error instead, so a
   * message is never retried forever for its own sake. A store outage is
   * retried for as long as it lasts: the messages stay owed to the engine.
   */
  private async deferBatch(
    batch: readonly Delivery[],
    dead: Array<{ delivery: Delivery; letter: NewDeadLetter }>,
    e: unknown,
    cause: "store" | "unexpected" = "store",
    /**
     * What went to the store: only those deliveries' failures are counted; the
     * skipped ones (filtered, duplicates seen before) never went there and are
     * acked. Without it (handling threw), every delivery counts.
     */
    refused?: { readonly wrote: ReadonlySet<Delivery>; readonly skipped: readonly Delivery[]; readonly filtered: number; readonly duplicate: number },
  ): Promise<void> {
    const error = cause === "store" ? ((e as Error)?.message ?? String(e)) : `unexpected: ${(e as Error)?.message ?? String(e)}`;
    this.lastError = cause === "store" ? `store: ${error}` : `${error} (${(e as Error)?.stack ?? ""})`;
    if (cause === "store") this.counters.storeRetries.inc();
    const limit = this.deps.compiled.maxDeliver;
    // Not the events' fault: the store unavailable, a breaker open, this pod's ring stale (another server moved the
    // keys; a pod on the new ring writes them: counted, they were dead-lettered as they came round again, 2 of 700),
    // shutdown's grace over. A handling that threw is counted: it may be the message that makes it throw.
    const notTheirs = cause === "store" && (isRetryable(e) || (e instanceof QuiverError && e.code === "placement_stale"));
    this.storeRefusing = notTheirs;
    const deadIds = new Set(dead.map((x) => x.delivery));
    // Filtered events and duplicates used to be counted too, and dead-lettered (`delivery_limit`, with the store's
    // error) beside the events the store refused.
    for (const d of notTheirs ? [] : batch) {
      if (deadIds.has(d) || (refused !== undefined && !refused.wrote.has(d))) continue;
      const failed = (this.failures.get(d.id)?.count ?? 0) + 1;
      if (failed < limit) {
        if (!this.failures.has(d.id) && this.failures.size >= MAX_COUNTED) this.failures.delete(this.failures.keys().next().value!);
        this.failures.set(d.id, { count: failed, error });
        continue;
      }
      dead.push({
        delivery: d,
        letter: {
          source: this.deps.compiled.name,
          reason: "delivery_limit",
          path: "",
          error: `failed ${failed} times (delivered ${d.deliveries} times); last error: ${error}`,
          payload: d.payload,
          origin: d.id,
          // An unreadable delivery's payload is not the event (a summary, its first bytes): kept from replay as such.
          ...(d.unreadable === undefined ? {} : { path: d.unreadable.path, ...(d.unreadable.cutFrom === undefined ? {} : { cutFrom: d.unreadable.cutFrom }) }),
        },
      });
    }
    const pause = this.nextPause();
    this.state = "paused";
    try {
      await this.deadLetter(dead);
      const done = new Set(dead.map((x) => x.delivery));
      const rejected = batch.filter((d) => done.has(d));
      await this.deps.source.reject(rejected);
      this.counters.consumed.inc(rejected.length);
      this.settled(dead);
      this.forgetFailures(rejected);
      const skipped = new Set(refused?.skipped ?? []);
      if (refused !== undefined && skipped.size > 0) {
        // Done with: nothing of theirs goes to the store.
        await this.deps.source.ack(refused.skipped);
        this.counters.consumed.inc(skipped.size);
        this.counters.filtered.inc(refused.filtered);
        this.counters.duplicate.inc(refused.duplicate);
        this.forgetFailures(refused.skipped);
      }
      const rest = batch.filter((d) => !done.has(d) && !skipped.has(d));
      // This pod cannot write them (its ring is stale), another can: let it take them rather than keep them.
      if (e instanceof QuiverError && e.code === "placement_stale") await this.deps.source.handBack(rest);
      else await this.deps.source.retryLater(rest, pause);
    } catch (inner) {
      this.lastError = `store: ${error}; then: ${(inner as Error).message}`;
      // Not settled: the whole batch comes back after the pause (not only at the engine's takeover timeout), and what
      // was dead-lettered is rejected then without a second letter (lettered).
      await this.deps.source.retryLater(batch, pause).catch(() => undefined);
    }
    await sleep(pause, this.stopping.signal);
  }

  /**
   * Messages delivered more than `maxDeliver` times and published longer than
   * `retryFor` ago (first seen by this consumer that long ago, when the engine
   * cannot tell: firstSeenAt), dead-lettered instead of handled: a backstop
   * that needs no memory. The failures this process counts are lost on a restart or a
   * takeover, and a message that crashes the process or hangs its handling
   * past the engine's timeout never gets a verdict counted (the durable's
   * max_deliver is unlimited): it came back forever. Not while the store is
   * refusing writes for a reason of its own (an outage is no message's fault).
   */
  private expired(batch: readonly Delivery[]): Array<{ delivery: Delivery; letter: NewDeadLetter }> {
    const { maxDeliver, retryForMs, name } = this.deps.compiled;
    const now = this.options.clock();
    const out: Array<{ delivery: Delivery; letter: NewDeadLetter }> = [];
    for (const d of batch) {
      // Recorded whatever happens next (the store refusing): the age counts from the first sight of it coming back. A
      // first delivery is not recorded: most are settled at once, and recording each cost a Map set and delete per
      // event (~300 ns) for a producer that picks its ids; one another pod took over stayed behind.
      const publishedAt = d.publishedAt ?? (d.deliveries > 1 ? this.firstSeenAt(d.id, now) : now);
      if (this.storeRefusing || d.deliveries <= maxDeliver || now - publishedAt <= retryForMs) continue;
      // Unreadable (no payload where the source reads it, or too large): the mapper dead-letters it with its own
      // reason, path and cut, never writing it. Lettered here from its payload (a first 4 KiB, the fields as JSON) as
      // a delivery_limit with no cut, it was replayable: the cut bytes published as the event, the letter deleted.
      if (d.unreadable !== undefined) continue;
      const last = this.failures.get(d.id)?.error ?? "none seen by this process (one that crashed or hung handling it, or another pod, saw it)";
      const since = d.publishedAt === undefined ? " since this consumer first saw it come back (the engine cannot tell when it was published)" : "";
      out.push({
        delivery: d,
        letter: {
          source: name,
          reason: "delivery_limit",
          path: "",
          error: `delivered ${d.deliveries} times over ${Math.round((now - publishedAt) / 60_000)} min${since}, past retryFor (${Math.round(retryForMs / 60_000)} min), with no verdict; last error: ${last}`,
          payload: d.payload,
          origin: d.id,
        },
      });
    }
    return out;
  }

  /** Acks what was written (or skipped), rejects what went to dead letters. */
  private async settle(batch: readonly Delivery[], dead: ReadonlyArray<{ readonly delivery: Delivery }>): Promise<void> {
    if (dead.length === 0) {
      await this.deps.source.ack(batch);
      return;
    }
    const rejected = new Set(dead.map((x) => x.delivery));
    await this.deps.source.ack(batch.filter((d) => !rejected.has(d)));
    await this.deps.source.reject([...rejected]);
  }

  /** Adds the letters of `dead` not added already (a batch handed back after its settling failed; `lettered`). */
  private async deadLetter(all: ReadonlyArray<{ readonly letter: NewDeadLetter }>): Promise<void> {
    const dead = all.filter((x) => !this.lettered.has(x.letter.origin));
    if (dead.length === 0) return;
    const trimmed = await this.deps.deadLetters.add(dead.map((x) => x.letter));
    this.counters.deadLettered.inc(dead.length);
    if (trimmed !== undefined && trimmed > 0) this.counters.lettersTrimmed.inc(trimmed);
    for (const x of dead) {
      this.counters.deadLetter(x.letter.reason).inc();
      // Until settled (the caller takes them out then). A consumer whose acks keep failing is stuck anyway; past the
      // bound, the oldest ids go and such a message, if it came back, would get a second letter.
      if (this.lettered.size >= MAX_LETTERED) this.lettered.delete(this.lettered.values().next().value!);
      this.lettered.add(x.letter.origin);
    }
  }

  /**
   * When this consumer first saw a message whose publication time the engine
   * cannot tell (a Redis id a producer chose: `1-1`) come back (a delivery
   * after its first: the time between is at most a pause or the takeover
   * timeout), for `retryFor`: without it such a message was never
   * dead-lettered for its age, and read as a time its id made it 56 years old
   * (dead-lettered on sight past maxDeliver). Forgotten once settled; past
   * MAX_COUNTED the oldest is forgotten (its age then counts again from its
   * next sighting: later, never sooner).
   */
  private firstSeenAt(id: string, now: number): number {
    const seen = this.firstSeen.get(id);
    if (seen !== undefined) return seen;
    if (this.firstSeen.size >= MAX_COUNTED) this.firstSeen.delete(this.firstSeen.keys().next().value!);
    this.firstSeen.set(id, now);
    return now;
  }

  private readonly firstSeen = new Map<string, number>();

  /** Settled: their failures no longer count, nor their first sighting. */
  private forgetFailures(batch: readonly Delivery[]): void {
    // Only deliveries firstSeenAt may have recorded: no hash lookup per event while one another pod took stays behind.
    if (this.firstSeen.size > 0) for (const d of batch) if (d.publishedAt === undefined && d.deliveries > 1) this.firstSeen.delete(d.id);
    if (this.failures.size === 0) return;
    for (const d of batch) this.failures.delete(d.id);
  }

  /** The engine has settled these: their letters are no longer owed a second look. */
  private settled(dead: ReadonlyArray<{ readonly letter: NewDeadLetter }>): void {
    for (const x of dead) this.lettered.delete(x.letter.origin);
  }
}

/**
 * Waits for `work` until `signal` aborts (shutdown's grace is over). The work
 * is not undone: a write that lands later is found stored when the batch is
 * delivered again, and counted a duplicate.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  // Retryable: not the batch's fault, never counted towards its delivery limit.
  const gaveUp = () => Object.assign(new Error("stopping: the store did not take the batch within the shutdown grace; it is left to the engine"), { retryable: true });
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(gaveUp());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(gaveUp());
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
