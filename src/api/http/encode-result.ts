import type { FeatureValue } from "../../kv/kv-node.ts";
import { formatRfc3339, type LookupResult, STATUS_NAMES } from "../../serving/index.ts";
import type { EntityInput } from "../../serving/index.ts";
import { STALE_HEADER } from "../answer-headers.ts";

/** Output names for a result's features. */
export function featureNames(result: LookupResult, full: boolean): string[] {
  return result.refs.map((r) => (full ? r.feature.fullName : r.feature.name));
}

/**
 * Quiver's row-oriented answer as an object: one entry per entity row, arrays
 * aligned with featureNames. The routes write it with NativeAnswerEncoder
 * (same bytes, no object tree); this is the reference its tests compare to.
 */
export function nativeBody(result: LookupResult, full: boolean): unknown {
  const nf = result.refs.length;
  const rows = new Array<unknown>(result.rowCount);
  for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) {
    const values = new Array<FeatureValue>(nf);
    const statuses = new Array<string>(nf);
    const timestamps = new Array<number>(nf);
    for (let c = 0; c < nf; c++) {
      values[c] = result.values[base + c]!;
      statuses[c] = STATUS_NAMES[result.statuses[base + c]!]!;
      timestamps[c] = result.timestamps[base + c]!;
    }
    const stale = result.stale;
    if (stale === undefined) rows[r] = { values, statuses, eventTimestamps: timestamps };
    else {
      // Values a cache served from its grace window because storage could not answer.
      const flags = new Array<boolean>(nf);
      for (let c = 0; c < nf; c++) flags[c] = stale[base + c] === 1;
      rows[r] = { values, statuses, eventTimestamps: timestamps, stale: flags };
    }
  }
  // `degraded` only when some shard could not answer: the healthy answer keeps its shape.
  return result.degraded.length > 0 ? { featureNames: featureNames(result, full), rows, degraded: result.degraded } : { featureNames: featureNames(result, full), rows };
}

const EPOCH = "1970-01-01T00:00:00Z";

/**
 * Feast's FieldStatus has no UNAVAILABLE; Feast clients that map names to the
 * enum would choke on it, so Feast routes say NOT_FOUND and flag the response
 * with an `x-quiver-unavailable` header instead.
 */
const FEAST_STATUS_NAMES = STATUS_NAMES.map((n) => (n === "UNAVAILABLE" ? "NOT_FOUND" : n));

/** How many values came from a cache's grace copy, for every lookup route's `x-quiver-stale` header. */
export function staleCount(result: LookupResult): number {
  const stale = result.stale;
  if (stale === undefined) return 0;
  let n = 0;
  for (const s of stale) n += s;
  return n;
}

/** Response headers flagging stale values; undefined (no allocation) when there are none. */
export function staleHeaders(result: LookupResult, extra?: Record<string, string>): Record<string, string> | undefined {
  const n = staleCount(result);
  if (n === 0) return extra;
  return { ...extra, [STALE_HEADER]: String(n) };
}

/**
 * Feast's column-oriented answer as an object: join keys first (request order,
 * echoed as PRESENT), then one entry per feature with a value per entity row.
 * The route writes it with FeastAnswerEncoder; this is the reference its tests compare to.
 */
export function feastBody(result: LookupResult, entities: EntityInput, full: boolean): unknown {
  const rows = result.rowCount;
  const nf = result.refs.length;
  const names: string[] = [];
  const results: unknown[] = [];
  for (const key of entities.keyNames) {
    const values = new Array<unknown>(rows);
    for (let r = 0; r < rows; r++) values[r] = entities.value(r, key) ?? null;
    names.push(key);
    results.push({ values, statuses: new Array<string>(rows).fill("PRESENT"), event_timestamps: new Array<string>(rows).fill(EPOCH) });
  }
  const fnames = featureNames(result, full);
  for (let c = 0; c < nf; c++) {
    const values = new Array<FeatureValue>(rows);
    const statuses = new Array<string>(rows);
    const timestamps = new Array<string>(rows);
    for (let r = 0, at = c; r < rows; r++, at += nf) {
      values[r] = result.values[at]!;
      statuses[r] = FEAST_STATUS_NAMES[result.statuses[at]!]!;
      timestamps[r] = formatRfc3339(result.timestamps[at]!);
    }
    names.push(fnames[c]!);
    results.push({ values, statuses, event_timestamps: timestamps });
  }
  return { metadata: { feature_names: names }, results };
}
