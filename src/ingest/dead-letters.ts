import type { DeadLetterReason } from "./mapping.ts";

/** What goes to the dead-letter stream: nothing a source delivers is dropped silently. */
export interface NewDeadLetter {
  readonly source: string;
  readonly reason: DeadLetterReason;
  /** The payload field the problem is about ("" when about the whole payload). */
  readonly path: string;
  readonly error: string;
  /** The original payload, byte for byte, unless `cutFrom` says it is only its first bytes. */
  readonly payload: Uint8Array;
  /** The message's id in the source stream. */
  readonly origin: string;
  /**
   * Set when `payload` holds only the first bytes of the event's (its size in
   * bytes): a letter must fit its stream. Such a letter is never replayed: a
   * truncated event published as if whole (replay.ts).
   */
  readonly cutFrom?: number;
}

export interface DeadLetter extends NewDeadLetter {
  /** Id in the dead-letter stream. */
  readonly id: string;
  /** When it was dead-lettered, ms since the epoch. */
  readonly at: number;
}

/** A stored letter's named fields besides its payload (Redis: stream entry fields; NATS: `Quiver-*` headers). */
export type DeadLetterField = "source" | "reason" | "path" | "error" | "origin" | "at" | "cut";

/** How many dead letters a source's dead-letter stream keeps, and how long (`deadLetters` in the sources file). */
export interface DeadLetterRetention {
  readonly maxLetters: number;
  /** 0: no age limit (the count still bounds the stream). */
  readonly maxAgeMs: number;
}

/** Dead letters are for a person to look at and replay: a week of them, at most 100,000 per stream, by default. */
export const DEFAULT_DEAD_LETTER_RETENTION: DeadLetterRetention = { maxLetters: 100_000, maxAgeMs: 7 * 24 * 3600_000 };

/** A listed letter from its id in the dead-letter stream, a reader of its fields (missing ones read "") and its payload. */
export function deadLetterOf(id: string, field: (name: DeadLetterField) => string, payload: Uint8Array): DeadLetter {
  const error = field("error");
  const cutFrom = cutSize(field("cut"), error, payload.length);
  return {
    id,
    source: field("source"),
    reason: field("reason") as DeadLetterReason,
    path: field("path"),
    error,
    origin: field("origin"),
    at: Number(field("at")),
    payload,
    ...(cutFrom === undefined ? {} : { cutFrom }),
  };
}

/** Written by NATS dead-letter queues before the `cut` field existed (until 12-07), at the end of the error. */
const CUT_NOTE = /\(payload cut from (\d+) to (\d+) bytes to fit the dead-letter stream\)$/;

/** A letter's `cut` field, or the note letters cut before it existed carry in their error. */
function cutSize(cut: string, error: string, kept: number): number | undefined {
  if (cut !== "") {
    const n = Number(cut);
    // Unreadable: cut all the same (the field is only written for a cut payload).
    return Number.isInteger(n) && n > kept ? n : kept + 1;
  }
  const note = CUT_NOTE.exec(error);
  return note === null || Number(note[2]) !== kept ? undefined : Number(note[1]);
}

/**
 * A source's dead-letter stream, kept in the same engine as the source (a
 * Redis stream beside it, a JetStream stream). The CLI lists and replays.
 */
/** Which letters a listing wants: one source's (sources may share a stream, and so its dead letters), of one reason. */
export interface LetterFilter {
  readonly source?: string;
  readonly reason?: string;
}

/** Does a letter's source and reason pass `filter`? */
export function letterPasses(filter: LetterFilter, source: string, reason: string): boolean {
  return (filter.source === undefined || source === filter.source) && (filter.reason === undefined || reason === filter.reason);
}

export interface DeadLetterQueue {
  /**
   * Stores `letters`; then the stream's retention (DeadLetterRetention) removes its oldest past the limits. Resolves
   * to how many letters that removed, or undefined where the engine removes them itself without saying (JetStream).
   */
  add(letters: readonly NewDeadLetter[]): Promise<number | undefined>;
  /** Oldest first, up to `limit` letters passing `filter` (the scan goes past others). */
  list(limit: number, filter?: LetterFilter): Promise<DeadLetter[]>;
  remove(ids: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
