import type { CompiledSource } from "./compile-sources.ts";
import type { NewDeadLetter } from "./dead-letters.ts";
import { type IdempotencyWindow, scopedKey } from "./idempotency-window.ts";
import { type CompiledMapping, type MappedRow, MappingError } from "./mapping.ts";
import { type PayloadDecoder, payloadDecoder } from "./payload.ts";
import type { Delivery } from "./stream-source.ts";

/** Rows for one mapping (one view), each with the delivery it came from. */
export interface MappedGroup {
  readonly mapping: CompiledMapping;
  readonly rows: MappedRow[];
  readonly from: Delivery[];
}

export interface MappedBatch {
  readonly groups: MappedGroup[];
  /** Deliveries that failed mapping: dead letters, acknowledged with the batch. */
  readonly dead: Array<{ readonly delivery: Delivery; readonly letter: NewDeadLetter }>;
  /**
   * Events skipped as duplicates (an idempotency key seen in an earlier
   * batch) and filtered out (no mapping accepts them): counted by the consumer
   * once the batch is written, not on every delivery of a batch the store
   * refused.
   */
  readonly duplicate: number;
  readonly filtered: number;
  /** Those deliveries (duplicates and filtered): done with, whatever the store does with the rest of the batch. */
  readonly skipped: Delivery[];
}

/**
 * Decodes and maps a batch of deliveries onto views. An event either maps
 * fully (every mapping whose filter accepts it) or goes to dead letters whole;
 * an event whose idempotency key was seen within the window is counted as a
 * duplicate and skipped.
 */
export class BatchMapper {
  private readonly decode: PayloadDecoder;

  constructor(
    private readonly source: CompiledSource,
    private readonly seen: IdempotencyWindow,
  ) {
    this.decode = payloadDecoder(source.format);
  }

  map(deliveries: readonly Delivery[]): MappedBatch {
    const mappings = this.source.mappings;
    const groups: MappedGroup[] = mappings.map((mapping) => ({ mapping, rows: [], from: [] }));
    const dead: MappedBatch["dead"] = [];
    const pending = new Array<MappedRow | undefined>(mappings.length);
    let duplicates = 0;
    let filtered = 0;
    const skipped: Delivery[] = [];
    for (const d of deliveries) {
      if (d.unreadable !== undefined) {
        // No payload where the source reads it, or one too large to read: nothing to decode.
        const { reason = "undecodable", path, error, cutFrom } = d.unreadable;
        dead.push({ delivery: d, letter: { source: this.source.name, reason, path, error, payload: d.payload, origin: d.id, ...(cutFrom === undefined ? {} : { cutFrom }) } });
        continue;
      }
      let accepted = 0;
      try {
        const payload = this.decode(d.payload);
        for (let m = 0; m < mappings.length; m++) {
          const mapping = mappings[m]!;
          if (!mapping.accepts(payload)) {
            pending[m] = undefined;
            continue;
          }
          pending[m] = mapping.map(payload);
          accepted++;
        }
      } catch (e) {
        // Anything else one event's payload makes the mapping throw is that event's dead letter too: thrown
        // out of the batch it was a poison message, the batch retried forever (Redis) or dropped at the
        // delivery limit with its valid neighbours (NATS).
        const m = e instanceof MappingError ? e : new MappingError("invalid_value", "(payload)", `could not map the event: ${(e as Error)?.message ?? String(e)}`);
        dead.push({ delivery: d, letter: { source: this.source.name, reason: m.reason, path: m.path, error: m.message, payload: d.payload, origin: d.id } });
        continue;
      }
      if (accepted === 0) {
        filtered++;
        skipped.push(d);
        continue;
      }
      // A key seen in an earlier batch; one repeated within this batch is decided once the push path has refused
      // what it refuses (BatchWriter.prepare).
      let duplicate = false;
      for (let m = 0; m < mappings.length; m++) {
        const key = pending[m]?.idempotencyKey;
        if (key !== undefined && this.seen.has(mappings[m]!.view.name, scopedKey(this.source.dedupScope, mappings[m]!.view.version, key))) duplicate = true;
      }
      if (duplicate) {
        duplicates++;
        skipped.push(d);
        continue;
      }
      for (let m = 0; m < mappings.length; m++) {
        const row = pending[m];
        if (row === undefined) continue;
        groups[m]!.rows.push(row);
        groups[m]!.from.push(d);
      }
    }
    return { groups: groups.filter((g) => g.rows.length > 0), dead, duplicate: duplicates, filtered, skipped };
  }
}
