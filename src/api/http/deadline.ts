import { invalid } from "../../errors/index.ts";
import { DEGRADED_HEADER } from "../answer-headers.ts";
import { MAX_LOOKUP_BUDGET_MS } from "../lookup-budget.ts";

export const TIMEOUT_HEADER = "x-quiver-timeout-ms";
const DECIMAL = /^\d+(\.\d+)?$/;
/** Longest budget a client may ask for: a lookup is not a batch job. */
const MAX_BUDGET_MS = MAX_LOOKUP_BUDGET_MS;

/**
 * When requests that waited in the admission queue arrived (`performance.now()`
 * ms). Only queued requests are noted: one admitted at once starts its budget
 * when its handler runs, a few microseconds later.
 */
const queuedSince = new WeakMap<Request, number>();

/** Notes that `req` has waited for admission since `at`: its budget started then (route.ts). */
export function noteQueuedSince(req: Request, at: number): void {
  queuedSince.set(req, at);
}

/**
 * Did `req` wait in the admission queue? Its handler then runs after its
 * socket's callback (admitted when another request finished), so even an
 * answer from memory is written late (runtime/late-body.ts).
 */
export function waitedForAdmission(req: Request): boolean {
  return queuedSince.has(req);
}

/**
 * The lookup's budget (ms): the client's `x-quiver-timeout-ms`, else the
 * server default. Read (and a bad value refused) before the lookup runs;
 * the deadline it gives (`deadlineAfter`) is only needed when storage
 * answers later, so an answer from memory costs no clock read for it.
 */
export function lookupBudget(req: Request, defaultMs: number): number {
  const raw = req.headers.get(TIMEOUT_HEADER);
  if (raw === null) return defaultMs;
  // Decimal digits only (Number() would also take "0x10" and "1e3"); whitespace around a header value is not part of it.
  const text = raw.trim();
  const ms = DECIMAL.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_BUDGET_MS)) {
    // Quoted as other refusals quote client text: clipped (a header may run to Bun's 16 KB limit).
    const shown = raw.length > 40 ? `${JSON.stringify(raw.slice(0, 40))}… (${raw.length} characters)` : JSON.stringify(raw);
    throw invalid("invalid_header", `(headers).${TIMEOUT_HEADER}`, `expected a budget in milliseconds from 1 to ${MAX_BUDGET_MS}, got ${shown}`);
  }
  return ms;
}

/**
 * The deadline on the `performance.now()` clock for a budget from
 * `lookupBudget`, counted from when the request arrived, so time it waited in
 * the admission queue is spent from it (as a gRPC call's deadline is).
 * Storage that cannot answer by then yields UNAVAILABLE for its rows
 * (defaults, flagged), never a late answer.
 */
export function deadlineAfter(req: Request, budgetMs: number): number {
  return (queuedSince.get(req) ?? performance.now()) + budgetMs;
}

/** `x-quiver-degraded: shard-a,shard-b` when some shards could not answer; undefined (no header) otherwise. */
export function degradedHeaders(degraded: readonly string[], extra?: Record<string, string>): Record<string, string> | undefined {
  if (degraded.length === 0) return extra;
  return { ...extra, [DEGRADED_HEADER]: degraded.join(",") };
}
