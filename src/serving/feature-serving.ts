import type { Registry, RegistryHolder } from "../registry/index.ts";
import type { LookupResult, LookupService } from "./lookup-service.ts";
import type { RawRows } from "./raw-rows.ts";
import { type LookupDialect, type PlannedLookup, planLookup } from "./lookup-request.ts";
import { type PushDialect, planPush } from "./push-request.ts";
import type { PushService } from "./push-service.ts";

/** A push's answer on every edge: rows stored, and rows skipped because what was stored was as new or newer. */
export interface PushResult {
  readonly written: number;
  readonly ignored: number;
}

export interface ServingLimits {
  /** Most entity rows per lookup or push. */
  readonly maxRows: number;
  /** Most values one lookup's answer may hold (rows × features). */
  readonly maxValues: number;
}

/** Per-call options every edge can give: the caller's deadline becomes the lookup budget. */
export interface CallOptions {
  /** performance.now() ms after which the answer is useless to the caller. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

/**
 * The transport-neutral serving layer: every edge (HTTP, gRPC) decodes its
 * request to a plain object, calls these use cases with its dialect and
 * encodes the result; validation and resolution live here once. Errors are
 * QuiverErrors with a kind and the path of the offending field.
 */
export class FeatureServing {
  constructor(
    private readonly registry: RegistryHolder,
    private readonly lookups: LookupService,
    private readonly pushes: PushService,
    /** Also what bounds the features a match joins (vector/match-request.ts). */
    readonly limits: ServingLimits,
  ) {}

  /** The registry requests are resolved against right now. */
  get currentRegistry(): Registry {
    return this.registry.current;
  }

  /** Validates and resolves a lookup request; no storage is touched. */
  planLookup(body: Readonly<Record<string, unknown>>, dialect: LookupDialect): PlannedLookup {
    return planLookup(this.registry.current, body, dialect, this.limits);
  }

  /** Runs a planned lookup; synchronous when every key is in memory. */
  lookup(plan: PlannedLookup, options?: CallOptions): LookupResult | Promise<LookupResult> {
    return this.lookups.lookup(plan.query, options);
  }

  /**
   * Runs a planned lookup straight from the stored bytes when the store and
   * the request allow it (see LookupService.lookupRaw); undefined otherwise.
   */
  lookupRaw<T>(plan: PlannedLookup, write: (rows: RawRows, plan: PlannedLookup) => T | undefined): T | undefined {
    return this.lookups.lookupRaw(plan.query, write, plan);
  }

  /**
   * After `lookupRaw` answered undefined: the lookup answered by `write`
   * from stored bytes (keys a cache lacked read through) or by `encode` of
   * its result (see LookupService.lookupRest).
   */
  lookupRest<T, A>(plan: PlannedLookup, options: CallOptions | undefined, write: (rows: RawRows, arg: A) => T | undefined, encode: (result: LookupResult, arg: A, late: boolean) => T, arg: A): T | Promise<T> {
    return this.lookups.lookupRest(plan.query, options, write, encode, arg);
  }

  /** Validates every pushed row, then writes them as one last-write-wins batch: what the edges answer a push with. */
  async push(body: Readonly<Record<string, unknown>>, dialect: PushDialect, options?: CallOptions): Promise<PushResult> {
    const entries = planPush(this.registry.current, this.pushes, body, dialect, this.limits.maxRows);
    const { written, ignored } = await this.pushes.write(entries, options?.signal);
    return { written, ignored };
  }
}
