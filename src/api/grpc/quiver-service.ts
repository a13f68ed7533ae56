import type { ServerDuplexStream } from "@grpc/grpc-js";
import { invalid, QuiverError, toQuiverError } from "../../errors/index.ts";
import type { FeatureServing, LookupDialect, LookupResult, PlannedLookup, PushDialect, RawRows } from "../../serving/index.ts";
import type { Admission } from "../../resilience/admission.ts";
import { STALE_HEADER } from "../answer-headers.ts";
import { MAX_LOOKUP_BUDGET_MS } from "../lookup-budget.ts";
import { DEFAULT_WORK_BOUNDS, OverdueWatch, overdue, type Watched, type WorkBounds } from "../work-bounds.ts";
import { type CallContext, DecodeFailure, Undecoded, deadlineOf, failedForAdmission, type MethodMetrics, overloaded, whenAdmitted, withinDeadline } from "./call.ts";
import { encodeLookupResponse, encodeStreamError, type Id } from "./encode-quiver.ts";
import { QuiverRowsEncoder } from "./encode-quiver-rows.ts";
import { grpcCodeOf } from "./grpc-status.ts";
import { type OpenStream, OpenStreams, type StreamEndReason } from "./open-streams.ts";
import { type FeastValue, int64Of, type LongLike as Long, plainOfFeastValue } from "./values.ts";


/** Decoded quiver.v1.LookupRequest. */
export interface QuiverLookupRequest {
  readonly features: readonly string[];
  readonly feature_service: string;
  readonly entities: readonly { readonly name: string; readonly int64_values: readonly (number | Long)[]; readonly string_values: readonly string[] }[];
  readonly fill_defaults?: boolean | null;
  readonly full_feature_names: boolean;
  readonly id: number | Long;
  readonly timeout_ms: number;
}

/** Decoded quiver.v1.PushRequest. */
export interface QuiverPushRequest {
  readonly feature_view: string;
  readonly rows: readonly { readonly values: Readonly<Record<string, FeastValue>>; readonly event_timestamp_ms: number | Long }[];
}

const LOOKUP: LookupDialect = { features: "features", featureService: "feature_service", entities: "entities", fillDefaults: "fill_defaults", fullFeatureNames: "full_feature_names", strictFlags: true, echoesEntities: false, emptyMeansAbsent: false, typedEcho: false };
const PUSH: PushDialect = { view: "feature_view", data: "rows", form: "rows", pushSources: false, declaredSources: false, to: undefined };

/** Most lookups one LookupStream runs at once; reading pauses above it. */
const STREAM_WINDOW = 64;
/**
 * Answer bytes a LookupStream may have written and not yet sent (the client
 * not reading) before reading pauses. The call's own bound counts answers (16),
 * not bytes: 16 answers of 4 MB each (1,300 embeddings) were held per stream.
 */
const STREAM_QUEUED_BYTES = 1 << 20;

/** quiver.v1.FeatureService: Lookup, LookupStream, Push. */
export class QuiverGrpcService {
  private readonly rowsEncoder = new QuiverRowsEncoder();
  /** The id of the lookup being answered from stored rows (set just before lookupRaw, which runs synchronously). */
  private rawId: Id = 0;
  private readonly fromRows = (rows: RawRows, plan: PlannedLookup): Uint8Array | undefined => this.rowsEncoder.encode(rows, plan.fullFeatureNames, this.rawId);
  /** The same, once keys a cache lacked were read (lookupRest): a copy, as the encoder's buffer is reused before the call sends it. */
  private readonly lateRows = (rows: RawRows, a: LateAnswer): Uint8Array | undefined => this.rowsEncoder.encode(rows, a.full, a.id)?.slice();

  constructor(
    private readonly serving: FeatureServing,
    /** Lookup budget (ms) for stream messages without timeout_ms on a call without a deadline. */
    private readonly defaultBudgetMs: number | undefined,
  ) {}

  lookup(req: QuiverLookupRequest, ctx: CallContext): Uint8Array | Promise<Uint8Array> {
    return this.run(req, ctx.budget, ctx);
  }

  async push(req: QuiverPushRequest, ctx: CallContext): Promise<{ written: number; ignored: number }> {
    const rows = new Array<Record<string, unknown>>(req.rows.length);
    for (let i = 0; i < req.rows.length; i++) {
      const src = req.rows[i]!;
      const row: Record<string, unknown> = {};
      for (const name of Object.keys(src.values)) {
        const path = `rows[${i}].values.${name}`;
        const value = plainOfFeastValue(src.values[name], path);
        // A Value with none of its fields is no value (the Feast services refuse it too), not a null to store.
        if (value === undefined) throw invalid("invalid_value", path, "no value set (a Value with none of its fields; null_val for a null)");
        // Own property even for "__proto__" (refused then as an unknown column): assigned, it replaced the row's prototype and the column vanished.
        if (name === "__proto__") Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
        else row[name] = value;
      }
      const ts = int64Of(src.event_timestamp_ms);
      if (typeof ts === "string") throw invalid("invalid_value", `rows[${i}].event_timestamp_ms`, `expected milliseconds since the epoch (a safe integer), got ${ts}`);
      if (ts !== 0) row.event_timestamp = ts;
      rows[i] = row;
    }
    try {
      return await this.serving.push({ feature_view: req.feature_view, rows }, PUSH, { deadline: ctx.deadline });
    } catch (e) {
      throw inMessageTerms(e);
    }
  }

  /**
   * Many lookups on one stream: each answer carries its request's id; a bad
   * or failed lookup answers with `error` set and the stream goes on. At most
   * STREAM_WINDOW run at once (reading pauses above it), and reading pauses
   * while the client is not reading its answers (the call's write says so;
   * flow control then holds the client's requests); the stream ends after
   * the client half-closes and every answer is written, or when `open` stops
   * it (the drain, idle, its connection closing: open-streams.ts).
   */
  lookupStream(
    call: ServerDuplexStream<QuiverLookupRequest | DecodeFailure | Undecoded, Uint8Array>,
    metrics: MethodMetrics,
    admission?: Admission,
    bounds: WorkBounds = DEFAULT_WORK_BOUNDS,
    watch: OverdueWatch = new OverdueWatch(),
    open: OpenStreams = new OpenStreams(),
  ): void {
    const callDeadline = deadlineOf(call);
    let inFlight = 0;
    let ended = false;
    let paused = false;
    /** The server drains: nothing more is read, and the stream ends UNAVAILABLE once what it read is answered. */
    let draining = false;
    /** Why the server stopped it (draining). */
    let stopped: StreamEndReason = "shutdown";
    let closed = false;
    /** The client is not reading: answers wait in the call (its write said so) until it drains. */
    let blocked = false;
    /** Answer bytes written to the call and not yet sent on (the client reads slower than we answer). */
    let queuedBytes = 0;
    /** When it last had work (open.now()): a lookup answered, its answers sent on; idle from then if nothing runs or waits. */
    let lastActive = open.now();
    const finish = () => {
      if (!ended || inFlight > 0 || closed) return;
      closed = true;
      open.forget(self);
      // Messages the client sent after the server stopped the stream are not read: UNAVAILABLE says so, and that it
      // may open the stream again (elsewhere: the server's GOAWAY has gone out, or it was idle). A client that
      // half-closed gets its OK as before.
      if (draining) call.emit("error", open.statusFor(stopped));
      else call.end();
    };
    const stop = (reason: StreamEndReason): boolean => {
      // Half-closed by its client: every message was read (its "end" comes after the last); it ends OK once answered.
      if (ended) return false;
      stopped = reason;
      draining = true;
      ended = true;
      pauseReading();
      finish();
      return true;
    };
    const self: OpenStream = {
      connection: open.connectionOf(call),
      quietSince: () => (inFlight > 0 || queuedBytes > 0 || blocked ? undefined : lastActive),
      stop,
    };
    const pauseReading = () => {
      if (paused) return;
      paused = true;
      call.pause();
    };
    call.on("cancelled", () => open.forget(self));
    const mayRead = () => {
      if (paused && !draining && !blocked && queuedBytes <= STREAM_QUEUED_BYTES / 2 && inFlight < STREAM_WINDOW / 2) {
        paused = false;
        call.resume();
      }
    };
    const onDrain = () => {
      blocked = false;
      mayRead();
    };
    const sentOn = (n: number) => () => {
      queuedBytes -= n;
      if (queuedBytes === 0) lastActive = open.now();
      mayRead();
    };
    // A client that sends lookups and does not read the answers would otherwise have them all queued in this process.
    const send = (bytes: Uint8Array) => {
      if (call.cancelled) return;
      queuedBytes += bytes.length;
      const more = call.write(bytes, sentOn(bytes.length));
      if (queuedBytes > STREAM_QUEUED_BYTES) pauseReading();
      if (more || blocked) return;
      blocked = true;
      pauseReading();
      call.once("drain", onDrain);
    };
    const done = () => {
      inFlight--;
      if (inFlight === 0) lastActive = open.now();
      mayRead();
      finish();
    };
    call.on("data", (message: QuiverLookupRequest | DecodeFailure | Undecoded) => {
      const start = performance.now();
      // Decoded once admitted (call.ts Undecoded); a message refused unread has its id read alone, for its answer.
      let req = message;
      let id: Id = message instanceof Undecoded || message instanceof DecodeFailure ? 0 : message.id;
      let admittedAt = -1;
      // A degraded answer counts against admission as a unary call's does (its message names the shards).
      let degraded = false;
      const notes: AnswerNotes = {
        header() {},
        degraded() {
          degraded = true;
        },
      };
      // The admission slot is held until the lookup's work ends, as a unary call's is, or until its bound (call.ts).
      let working = false;
      let answeredCode = -1;
      let watched: Watched | undefined;
      const release = () => {
        if (admittedAt < 0 || working || answeredCode < 0) return;
        admission!.done(admittedAt, failedForAdmission(answeredCode) || degraded);
        admittedAt = -1;
      };
      const settled = () => {
        if (!working) return;
        working = false;
        watch.ended(watched!);
        release();
      };
      const finish = (code: number) => {
        metrics.count(code);
        metrics.latency.observe((performance.now() - start) / 1000);
        answeredCode = code;
        release();
        done();
      };
      // Once each: a lookup given up at its bound is answered then, and its work's late end changes nothing.
      const answer = (bytes: Uint8Array) => {
        if (answeredCode >= 0) return;
        send(bytes);
        finish(0);
      };
      const failure = (e: unknown) => {
        if (answeredCode >= 0) return;
        const q = toQuiverError(e);
        const code = grpcCodeOf(q);
        send(encodeStreamError(id, { status: code, code: q.code, message: q.message, path: q.path }));
        finish(code);
      };
      const giveUp = () => {
        if (!working) return;
        working = false;
        metrics.overdue();
        if (answeredCode < 0) failure(overdue());
        else release();
      };
      inFlight++;
      if (inFlight >= STREAM_WINDOW) pauseReading();
      // Each lookup on the stream goes through admission like a unary call: a shed one answers RESOURCE_EXHAUSTED.
      whenAdmitted(
        admission,
        (startedAt) => {
          admittedAt = startedAt;
          try {
            if (req instanceof Undecoded) req = req.decode() as QuiverLookupRequest | DecodeFailure;
            if (req instanceof DecodeFailure) throw invalid("invalid_message", "(message)", `not a valid LookupRequest: ${req.reason}`);
            id = req.id;
            // As x-quiver-timeout-ms over HTTP: 3,000,000,000 overflowed the timer and answered DEADLINE_EXCEEDED at once.
            if (req.timeout_ms > MAX_LOOKUP_BUDGET_MS) throw invalid("invalid_request", "timeout_ms", `expected a budget in milliseconds from 1 to ${MAX_LOOKUP_BUDGET_MS} (0 = the call's deadline or the server's default), got ${req.timeout_ms}`);
            // The budget counts from the message's arrival, as a unary call's and an HTTP lookup's do: time waiting
            // for admission is spent from it (it counted from admission, so a queued lookup got its whole budget again).
            const budget = req.timeout_ms > 0 ? start + req.timeout_ms : undefined;
            const deadline = budget === undefined ? callDeadline : callDeadline === undefined ? budget : Math.min(budget, callDeadline);
            const readBudget = deadline !== undefined ? Math.min(deadline, start + MAX_LOOKUP_BUDGET_MS) : this.defaultBudgetMs === undefined ? undefined : start + this.defaultBudgetMs;
            const work = this.run(req, readBudget, notes);
            if (work instanceof Promise) {
              working = true;
              watched = watch.watch((readBudget ?? start + MAX_LOOKUP_BUDGET_MS) + bounds.graceMs, giveUp);
              work.then(settled, settled);
            }
            const out = withinDeadline(work, deadline);
            if (out instanceof Promise) out.then(answer, failure);
            else answer(out);
          } catch (e) {
            failure(e);
          }
        },
        (refusal) => {
          metrics.shed(refusal);
          if (message instanceof Undecoded) {
            id = message.peekUint64(6);
            message.drop();
          }
          failure(overloaded(refusal));
        },
      );
    });
    call.on("end", () => {
      ended = true;
      finish();
    });
    // A client that goes away mid-stream is not an error of ours; in-flight answers are dropped.
    call.on("error", () => {});
    // Last: a stream whose handler runs once the drain has begun is stopped here, with everything above in place.
    open.add(self);
  }

  private run(req: QuiverLookupRequest, deadline: number | undefined, ctx: AnswerNotes): Uint8Array | Promise<Uint8Array> {
    const body = bodyOf(req);
    const plan = this.serving.planLookup(body, LOOKUP);
    // The embedded store hands rows over as bytes: the answer is written from them, no value objects in between.
    this.rawId = req.id;
    const stored = this.serving.lookupRaw(plan, this.fromRows);
    if (stored !== undefined) return stored;
    const names = plan.query.refs.map((r) => (plan.fullFeatureNames ? r.feature.fullName : r.feature.name));
    const answer = (result: LookupResult) => {
      if (result.degraded.length > 0) ctx.degraded(result.degraded);
      if (result.stale !== undefined) ctx.header(STALE_HEADER, "true");
      return encodeLookupResponse(result, names, req.id);
    };
    return this.serving.lookupRest(plan, { deadline }, this.lateRows, answer, { full: plan.fullFeatureNames, id: req.id });
  }
}

/** What an answer tells its call: response headers (a unary call's; a stream message has none) and a degraded answer. */
type AnswerNotes = Pick<CallContext, "header" | "degraded">;

/** What a lookup's answer written from stored rows needs once keys a cache lacked were read. */
interface LateAnswer {
  readonly full: boolean;
  readonly id: Id;
}

/**
 * A push error names the message's field, not the plain row's the serving
 * layer checked, which the proto does not have: `rows[i].values.<column>`
 * for `rows[i].<column>`, `rows[i].event_timestamp_ms` for the event time.
 */
function inMessageTerms(e: unknown): unknown {
  const m = e instanceof QuiverError && e.path !== undefined ? /^(rows\[\d+\])\.(.+)$/.exec(e.path) : null;
  if (m === null || !(e instanceof QuiverError) || e.path === undefined || m[2]!.startsWith("values.")) return e;
  const path = m[2] === "event_timestamp" ? `${m[1]}.event_timestamp_ms` : `${m[1]}.values.${m[2]}`;
  return new QuiverError(e.kind, e.code, e.message.startsWith(e.path) ? path + e.message.slice(e.path.length) : e.message, { path, retryable: e.retryable });
}

/** The request in the plain shape planLookup reads; entity columns keyed by join key name. */
function bodyOf(req: QuiverLookupRequest): Record<string, unknown> {
  // No prototype: join keys named "constructor" or "__proto__" are columns like any other.
  const entities: Record<string, unknown[]> = Object.create(null);
  for (let i = 0; i < req.entities.length; i++) {
    const col = req.entities[i]!;
    if (col.name === "") throw invalid("invalid_entity", `entities[${i}].name`, "is required");
    if (entities[col.name] !== undefined) throw invalid("invalid_entity", `entities[${i}].name`, `join key "${col.name}" is given twice`);
    const ints = col.int64_values;
    if (ints.length > 0 && col.string_values.length > 0) throw invalid("invalid_entity", `entities[${i}]`, "set int64_values or string_values, not both");
    if (ints.length > 0) {
      const out = new Array<unknown>(ints.length);
      for (let r = 0; r < ints.length; r++) out[r] = int64Of(ints[r]!);
      entities[col.name] = out;
    } else {
      entities[col.name] = col.string_values as unknown[];
    }
  }
  const body: Record<string, unknown> = { entities, full_feature_names: req.full_feature_names };
  if (req.features.length > 0) body.features = req.features;
  if (req.feature_service !== "") body.feature_service = req.feature_service;
  if (req.fill_defaults !== null && req.fill_defaults !== undefined) body.fill_defaults = req.fill_defaults;
  return body;
}
