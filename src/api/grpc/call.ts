import protobuf from "protobufjs";
import { Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceError, status } from "@grpc/grpc-js";
import { deadlineExceeded, invalidArgument, type QuiverError, resourceExhausted, toQuiverError } from "../../errors/index.ts";
import type { CounterHandle, HistogramHandle, MetricsRegistry } from "../../ops/metrics.ts";
import type { ShedRecorder } from "../../ops/shed-recorder.ts";
import { type Admission, REFUSED_CPU, REFUSED_LIMIT, refusalReason } from "../../resilience/index.ts";
import { MAX_TIMER_MS } from "../../runtime/timers.ts";
import { DEGRADED_HEADER } from "../answer-headers.ts";
import { MAX_LOOKUP_BUDGET_MS } from "../lookup-budget.ts";
import { DEFAULT_WORK_BOUNDS, OverdueWatch, overdue, type Watched, type WorkBounds } from "../work-bounds.ts";
import { CODE_NAMES, grpcCodeOf, toServiceError } from "./grpc-status.ts";
import { strictReader } from "./strict-reader.ts";
import type { LongLike } from "./values.ts";

/** What a request deserializer returns for bytes that are not the message: answered INVALID_ARGUMENT, never a crash. */
export class DecodeFailure {
  constructor(readonly reason: string) {}
}

/**
 * A request message as it arrived, decoded once its call is admitted
 * (`unary`, LookupStream): until then the call holds its bytes, not the
 * objects they decode to. Decoded on arrival, one 4 MiB Lookup of packed
 * int64 zeros (4 KB gzipped) became 240 MB of Longs, held while its client
 * kept the call open without ending it (grpc-js runs a unary handler at the
 * half-close): four such calls on one connection held 1 GB, and 100 may be
 * open on each. The decoding (0.4 s of CPU for that message) is also no
 * longer spent before admission's CPU check can refuse the call.
 */
export class Undecoded {
  private bytes: Buffer | undefined;
  /** Once its bytes were let go unread: what reading it answers. */
  private goneWith: QuiverError | undefined;
  /** Its call's handler has it (nothing drops it now). */
  private claimed = false;

  constructor(
    bytes: Buffer | undefined,
    private readonly type: protobuf.Type | undefined,
    /** Where its bytes are counted while held (large messages; held-messages.ts). */
    private readonly held?: { release(n: number): void },
  ) {
    this.bytes = bytes;
  }

  /** A message refused unread on arrival: reading it throws `error`. */
  static gone(error: QuiverError): Undecoded {
    const u = new Undecoded(undefined, undefined);
    u.goneWith = error;
    return u;
  }

  /**
   * The message, or a DecodeFailure; its bytes are let go (a second call is a DecodeFailure). Throws the
   * error of a message let go unread (`gone`, `expire`).
   */
  decode(): unknown {
    const bytes = this.bytes;
    if (bytes === undefined) {
      if (this.goneWith !== undefined) throw this.goneWith;
      return new DecodeFailure("the message was already read");
    }
    this.letGo(bytes);
    try {
      return this.type!.decode(strictReader(bytes));
    } catch (e) {
      return new DecodeFailure((e as Error).message);
    }
  }

  /** Its call's handler has it: from now on it is read (`decode`) or let go (`drop`), never expired. */
  claim(): void {
    this.claimed = true;
  }

  /** Lets its bytes go unread (its call was refused). */
  drop(): void {
    if (this.bytes !== undefined) this.letGo(this.bytes);
  }

  /** Lets its bytes go unless its call's handler has it; reading it then throws `error`. */
  expire(error: QuiverError): void {
    if (this.claimed || this.bytes === undefined) return;
    this.letGo(this.bytes);
    this.goneWith = error;
  }

  private letGo(bytes: Buffer): void {
    this.bytes = undefined;
    this.held?.release(bytes.length);
  }

  /**
   * A top-level uint64 field's value (the last one, as a decoder keeps), read without decoding the rest:
   * 0 when absent or when the bytes are not a message. A LookupStream answer to a message it refuses unread
   * (admission) still carries the message's `id`.
   */
  peekUint64(field: number): number | LongLike {
    const bytes = this.bytes;
    if (bytes === undefined) return 0;
    let v: number | LongLike = 0;
    try {
      const r = protobuf.Reader.create(bytes);
      while (r.pos < r.len) {
        const tag = r.uint32();
        if (tag === ((field << 3) | 0)) v = r.uint64() as unknown as LongLike;
        else r.skipType(tag & 7);
      }
    } catch {
      return 0;
    }
    return v;
  }
}

/** Per-call facts a handler may use. */
export interface CallContext {
  /** performance.now() ms when the caller stops waiting; undefined without a deadline. */
  readonly deadline: number | undefined;
  /**
   * The lookup budget: the call's deadline, else the server's default
   * (--lookup-timeout-ms, as HTTP without x-quiver-timeout-ms): storage that
   * cannot answer by then yields UNAVAILABLE values, not an error.
   */
  readonly budget: number | undefined;
  readonly metadata: Metadata;
  /** Adds a response header (sent with the answer). */
  header(name: string, value: string): void;
  /**
   * The answer is degraded: these shards' rows are defaults. A unary call says
   * so in `x-quiver-degraded`; either way admission counts the call as failed,
   * as HTTP's edge counts a degraded answer (the health score's error rate).
   */
  degraded(nodes: readonly string[]): void;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Res | Promise<Res>;

/** Per method and status code counts, and per method latency. */
export class GrpcMetrics {
  private readonly requests;
  private readonly latency;
  private readonly overdue;
  constructor(
    registry: MetricsRegistry,
    /** Where refused calls are counted and noted with HTTP's (quiver_admission_shed_total, the anomaly buffer); without it only as RESOURCE_EXHAUSTED answers. */
    private readonly sheds?: ShedRecorder,
  ) {
    this.requests = registry.counter("quiver_grpc_requests_total", "gRPC calls (and LookupStream messages) by method and status code.", ["method", "code"]);
    this.latency = registry.histogram("quiver_grpc_request_duration_seconds", "gRPC call latency by method (calls that reached their handler: not those refused by admission or the write token check).", ["method"]);
    this.overdue = registry.counter("quiver_grpc_overdue_work_total", "gRPC calls (and LookupStream messages) whose work had not ended by its bound: given up, its admission slot released (storage broke its deadline: a bug).", ["method"]);
  }

  /** Handles resolved once per method, so a call pays an array index and two adds. */
  method(name: string): MethodMetrics {
    const byCode: CounterHandle[] = [];
    const requests = this.requests;
    const sheds = this.sheds;
    const overdue = this.overdue;
    let overdueCount: CounterHandle | undefined;
    // Resolved at a method's first refusal of each kind: methods that are never shed export no shed series.
    const shedBy: ((() => void) | undefined)[] = [];
    return {
      latency: this.latency.labels(name),
      count(code: status): void {
        let h = byCode[code];
        if (h === undefined) {
          h = requests.labels(name, CODE_NAMES[code] ?? String(code));
          byCode[code] = h;
        }
        h.inc();
      },
      shed(refusal: number): void {
        if (sheds === undefined) return;
        const i = refusal === REFUSED_CPU ? 1 : 0;
        let r = shedBy[i];
        if (r === undefined) {
          r = sheds.recorder(name, refusalReason(refusal));
          shedBy[i] = r;
        }
        r();
      },
      overdue(): void {
        overdueCount ??= overdue.labels(name);
        overdueCount.inc();
      },
    };
  }
}

export interface MethodMetrics {
  readonly latency: HistogramHandle;
  count(code: status): void;
  /** A call admission refused (REFUSED_LIMIT or REFUSED_CPU): counted by reason and noted, as HTTP's refusals are. */
  shed(refusal: number): void;
  /** A call whose work was given up at its bound (../work-bounds.ts). */
  overdue(): void;
}

/** The call's deadline as a performance.now() time, or undefined when it has none. */
export function deadlineOf(call: { getDeadline(): Date | number }): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  if (!Number.isFinite(ms)) return undefined;
  return performance.now() + (ms - Date.now());
}

/**
 * Races a pending answer against the deadline: at the deadline the caller gets
 * DEADLINE_EXCEEDED at once; the storage reads got the same deadline in their
 * ReadContext and stop there. The work may go on (a push's retries): callers
 * keep its admission slot until it ends.
 */
export function withinDeadline<T>(work: T | Promise<T>, deadline: number | undefined): T | Promise<T> {
  if (deadline === undefined || !(work instanceof Promise)) {
    if (deadline !== undefined && performance.now() > deadline) throw late();
    return work;
  }
  const left = deadline - performance.now();
  if (left <= 0) {
    work.catch(() => {});
    throw late();
  }
  // A timer cannot wait longer (it would fire after 1 ms); the work is bounded by its own budget long before.
  if (left > MAX_TIMER_MS) return work;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), left);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function late(): QuiverError {
  return deadlineExceeded("the call's deadline passed before the lookup finished");
}

/** Write methods' admin token is checked before a handler runs, by the edge's interceptor (write-guard.ts). */
export interface UnaryOptions {
  /** Admission control (load shedding), shared with HTTP; a shed call answers RESOURCE_EXHAUSTED. Absent: never shed. */
  readonly admission?: Admission | undefined;
  /** Lookup budget (ms) for calls without a deadline. */
  readonly defaultBudgetMs?: number | undefined;
  /** The handler is a lookup: its work ends by its budget, and is bounded by it (WorkBounds.graceMs); else by `maxMs`. */
  readonly lookup?: boolean;
  /** When work that has not ended is given up (default DEFAULT_WORK_BOUNDS). */
  readonly bounds?: WorkBounds;
  /** Where the bounds are kept: the edge's one watch (default: the method's own). */
  readonly watch?: OverdueWatch;
}

/** Codes that count as a failed request for admission's limit (the HTTP edge's 5xx). */
const FAILED_CODES: ReadonlySet<number> = new Set([status.INTERNAL, status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.UNKNOWN]);

/** Whether a call (or a LookupStream message) answered `code` counts as failed for admission. */
export function failedForAdmission(code: number): boolean {
  return FAILED_CODES.has(code);
}

/** The error a shed call gets. */
export function overloaded(refusal: number = REFUSED_LIMIT): QuiverError {
  return resourceExhausted(
    "overloaded",
    refusalReason(refusal) === "cpu_overload" ? "the server is overloaded (requests are waiting for its CPU); retry shortly" : "the server is at its concurrency limit; retry shortly",
  );
}

/**
 * Runs `go(startedAt)` once admission lets the call in, or `shed()` when it is
 * refused; without admission control, at once with startedAt -1. Synchronous
 * when a slot is free (the common case: no promise).
 */
export function whenAdmitted(admission: Admission | undefined, go: (startedAt: number) => void, shed: (refusal: number) => void): void {
  if (admission === undefined) {
    go(-1);
    return;
  }
  const t = admission.admit();
  if (typeof t === "number") {
    if (t < 0) shed(t);
    else go(t);
    return;
  }
  void t.then((s) => (s < 0 ? shed(s) : go(s)));
}

/**
 * Sends a call's answer; when grpc-js throws sending it (it percent-encodes a
 * status message, and a message it cannot encode threw from the handler's
 * promise callback, ending the process), a plain INTERNAL status instead.
 */
function answer<Res>(callback: sendUnaryData<Res>, error: Partial<ServiceError> | null, res?: Res): void {
  try {
    callback(error, res);
  } catch {
    try {
      callback({ code: status.INTERNAL, details: "the answer could not be sent" });
    } catch {
      // The call is beyond answering (its stream already ended): nothing else to do for it.
    }
  }
}

/**
 * Wraps a handler once at start-up: decode failures and every thrown error
 * leave as a gRPC status with the field path; metrics per method and code.
 */
export function unary<Req, Res>(metrics: MethodMetrics, handler: UnaryHandler<Req, Res>, options: UnaryOptions) {
  const bounds = options.bounds ?? DEFAULT_WORK_BOUNDS;
  const watch = options.watch ?? new OverdueWatch();
  return (call: ServerUnaryCall<Req | DecodeFailure | Undecoded, Res>, callback: sendUnaryData<Res>): void => {
    const start = performance.now();
    let headers: Metadata | undefined;
    let degraded = false;
    const deadline = deadlineOf(call);
    const ctx: CallContext = {
      deadline,
      budget: deadline !== undefined ? Math.min(deadline, start + MAX_LOOKUP_BUDGET_MS) : options.defaultBudgetMs === undefined ? undefined : start + options.defaultBudgetMs,
      metadata: call.metadata,
      header(name, value) {
        headers ??= new Metadata();
        headers.set(name, value);
      },
      degraded(nodes) {
        degraded = true;
        this.header(DEGRADED_HEADER, nodes.join(","));
      },
    };
    let admittedAt = -1;
    // The admission slot is held until the handler's work ends, not only until the caller is answered: answered
    // DEADLINE_EXCEEDED at its deadline, a push went on writing (a hung shard's retries, ~1.7 s) with its slot
    // released, so clients with short deadlines could keep any number of writes running past the limit.
    // Work that has not ended by its bound is given up (WorkBounds).
    let working = false;
    let answeredCode = -1;
    let watched: Watched | undefined;
    const release = () => {
      if (admittedAt < 0 || working || answeredCode < 0) return;
      options.admission!.done(admittedAt, failedForAdmission(answeredCode) || degraded);
      admittedAt = -1;
    };
    const settled = () => {
      if (!working) return;
      working = false;
      watch.ended(watched!);
      release();
    };
    const finish = (code: status) => {
      metrics.count(code);
      metrics.latency.observe((performance.now() - start) / 1000);
      answeredCode = code;
      release();
    };
    // Once: a call given up at its bound is answered then, and its work's late end changes nothing.
    const fail = (e: unknown) => {
      if (answeredCode >= 0) return;
      const q = toQuiverError(e);
      finish(grpcCodeOf(q));
      answer(callback, toServiceError(q));
    };
    const succeed = (res: Res) => {
      if (answeredCode >= 0) return;
      if (headers !== undefined) call.sendMetadata(headers);
      finish(status.OK);
      answer(callback, null, res);
    };
    const giveUp = () => {
      if (!working) return;
      working = false;
      metrics.overdue();
      if (answeredCode < 0) fail(overdue());
      else release();
    };
    const raw = call.request;
    const go = (startedAt: number) => {
      admittedAt = startedAt;
      try {
        const req = raw instanceof Undecoded ? (raw.decode() as Req | DecodeFailure) : raw;
        if (req instanceof DecodeFailure) throw invalidArgument("invalid_message", `the request is not a valid protobuf message: ${req.reason}`, { path: "(message)" });
        const work = handler(req, ctx);
        if (work instanceof Promise) {
          working = true;
          watched = watch.watch(options.lookup === true ? (ctx.budget ?? start + MAX_LOOKUP_BUDGET_MS) + bounds.graceMs : performance.now() + bounds.maxMs, giveUp);
          work.then(settled, settled);
        }
        const out = withinDeadline(work, ctx.deadline);
        if (out instanceof Promise) out.then(succeed, fail);
        else succeed(out);
      } catch (e) {
        fail(e);
      }
    };
    if (raw instanceof Undecoded) raw.claim();
    whenAdmitted(options.admission, go, (refusal) => {
      metrics.shed(refusal);
      if (raw instanceof Undecoded) raw.drop();
      fail(overloaded(refusal));
    });
  };
}
