import type { FeatureValue } from "../kv/kv-node.ts";
import { type CompiledView, describeValue as describe } from "../registry/index.ts";
import { isoToMs } from "../serving/event-time.ts";
import { type Coercer, CoercionError } from "./coerce.ts";

/** Why an event cannot be written; the dead letter carries it. */
export const DEAD_LETTER_REASONS = ["undecodable", "missing_field", "invalid_value", "delivery_limit", "too_large"] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

/** Longest idempotency key kept (UTF-16 units): the dedup window holds up to a million per view. */
export const MAX_IDEMPOTENCY_KEY = 256;

/**
 * An event's idempotency key: a string (1 to MAX_IDEMPOTENCY_KEY units) or an
 * integer, as text. Anything else is the event's error, a dead letter: an
 * object's String() either throws (a poison message that stopped the
 * consumer) or collides ("[object Object]"), a list's joins ("q,r"), and an
 * integer past 2^53 has lost digits already.
 */
function idempotencyKeyOf(v: unknown, path: string): string {
  if (typeof v === "string") {
    if (v.length > 0 && v.length <= MAX_IDEMPOTENCY_KEY) return v;
    throw new MappingError("invalid_value", path, `idempotency key of ${v.length} characters; expected 1 to ${MAX_IDEMPOTENCY_KEY}`);
  }
  if (typeof v === "number" && Number.isSafeInteger(v)) return String(v);
  if (typeof v === "bigint") return String(v);
  throw new MappingError("invalid_value", path, `expected a string or integer idempotency key (an integer beyond 2^53 as a string), got ${describe(v)}`);
}

/** A mapping failure: the reason and the payload path it is about. */
export class MappingError extends Error {
  constructor(
    readonly reason: DeadLetterReason,
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

/** Reads a dotted path; `undefined` when any step is missing. */
export type FieldGetter = (payload: unknown) => unknown;

export function compilePath(path: string): FieldGetter {
  const parts = path.split(".");
  if (parts.length === 1) return (p) => (p !== null && typeof p === "object" ? (p as Record<string, unknown>)[path] : undefined);
  return (p) => {
    let cur: unknown = p;
    for (let i = 0; i < parts.length; i++) {
      if (cur === null || typeof cur !== "object") return undefined;
      cur = (cur as Record<string, unknown>)[parts[i]!];
    }
    return cur;
  };
}

export type TimeFormat = "epoch_s" | "epoch_ms" | "epoch_us" | "rfc3339";

const ZONED = /(Z|[+-]\d{2}:?\d{2})$/i;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?/;
const NUMBER_TEXT = /^\d+(\.\d+)?$/;

/** Event time in ms since the epoch from a payload value in the declared format; throws MappingError. */
export function eventTimeParser(format: TimeFormat, path: string): (v: unknown) => number {
  const bad = (v: unknown): never => {
    throw new MappingError("invalid_value", path, `expected an event time as ${format}, got ${describe(v)}`);
  };
  if (format === "rfc3339") {
    return (v) => {
      if (typeof v !== "string" || !RFC3339.test(v)) return bad(v);
      const s = v.replace(" ", "T");
      return isoToMs(ZONED.test(s) ? s : `${s}Z`) ?? bad(v);
    };
  }
  const factor = format === "epoch_s" ? 1000 : format === "epoch_ms" ? 1 : 0.001;
  return (v) => {
    const n = typeof v === "number" ? v : typeof v === "string" && NUMBER_TEXT.test(v) ? Number(v) : Number.NaN;
    if (!Number.isFinite(n) || n < 0) return bad(v);
    // Whole milliseconds, as every other write path stores them.
    return Math.floor(n * factor);
  };
}

/** One target column of a view: where its value comes from. */
export interface FieldMapping {
  /** Join key or feature name in the view. */
  readonly name: string;
  /** Payload path, or `=constant` for constants (error messages). */
  readonly path: string;
  readonly get: FieldGetter;
  readonly coerce: Coercer;
  /** Join keys are required; a missing feature field is written as null. */
  readonly required: boolean;
  /** A constant value instead of a payload field. */
  readonly constant?: FeatureValue;
}

/** An event mapped onto a view's row, as the push path takes it. */
export interface MappedRow {
  /** Join keys, features and `event_timestamp` (ms). */
  readonly row: Record<string, unknown>;
  readonly eventTime: number;
  readonly idempotencyKey: string | undefined;
}

/**
 * A source's mapping onto one feature view, compiled at load: path getters,
 * coercers and the time parser are prepared functions, so mapping an event is
 * a loop over them.
 */
export class CompiledMapping {
  /** Column names with their payload paths, for the push path's unknown-column check. */
  readonly columns: readonly { readonly name: string; readonly path: string }[];

  constructor(
    readonly view: CompiledView,
    private readonly fields: readonly FieldMapping[],
    private readonly eventTime: { readonly path: string; readonly get: FieldGetter; readonly parse: (v: unknown) => number },
    private readonly idempotency: { readonly path: string; readonly get: FieldGetter } | undefined,
    private readonly filter: { readonly get: FieldGetter; readonly equals: string | number | boolean } | undefined,
  ) {
    this.columns = fields.map((f) => ({ name: f.name, path: f.path }));
  }

  /** False when the mapping's filter excludes the event. */
  accepts(payload: unknown): boolean {
    return this.filter === undefined || this.filter.get(payload) === this.filter.equals;
  }

  /** Maps one event; throws MappingError naming the payload path. */
  map(payload: unknown): MappedRow {
    const row: Record<string, unknown> = {};
    const fields = this.fields;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (f.constant !== undefined) {
        row[f.name] = f.constant;
        continue;
      }
      const raw = f.get(payload);
      if (raw === undefined || raw === null) {
        if (f.required) throw new MappingError("missing_field", f.path, `missing (maps to join key "${f.name}")`);
        row[f.name] = null;
        continue;
      }
      try {
        row[f.name] = f.coerce(raw);
      } catch (e) {
        if (e instanceof CoercionError) throw new MappingError("invalid_value", f.path, `${e.message} (maps to "${f.name}")`);
        throw e;
      }
    }
    const rawTime = this.eventTime.get(payload);
    if (rawTime === undefined || rawTime === null) throw new MappingError("missing_field", this.eventTime.path, "missing (the event time)");
    const eventTime = this.eventTime.parse(rawTime);
    row.event_timestamp = eventTime;
    let idempotencyKey: string | undefined;
    if (this.idempotency) {
      const v = this.idempotency.get(payload);
      if (v !== undefined && v !== null) idempotencyKey = idempotencyKeyOf(v, this.idempotency.path);
    }
    return { row, eventTime, idempotencyKey };
  }

  /** The payload path a view column comes from (for errors the push path reports by column). */
  pathOf(column: string): string {
    if (column === "event_timestamp") return this.eventTime.path;
    return this.fields.find((f) => f.name === column)?.path ?? column;
  }
}
