import type { DeadLetterReason } from "./mapping.ts";

/** What goes to the dead-letter stream: nothing a source delivers is dropped silently. */
export interface NewDeadLetter {
  readonly source: string;
  readonly reason: DeadLetterReason;
  /** The payload field the problem is about ("" when about the whole payload). */
  readonly path: string;
  readonly error: string;
  /** The original payload, byte for byte. */
  readonly payload: Uint8Array;
  /** The message's id in the source stream. */
  readonly origin: string;
}

export interface DeadLetter extends NewDeadLetter {
  /** Id in the dead-letter stream. */
  readonly id: string;
  /** When it was dead-lettered, ms since the epoch. */
  readonly at: number;
}

/**
 * A source's dead-letter stream, kept in the same engine as the source (a
 * Redis stream beside it, a JetStream stream). The CLI lists and replays.
 */
export interface DeadLetterQueue {
  add(letters: readonly NewDeadLetter[]): Promise<void>;
  /** Oldest first, up to `limit` letters; with `reason`, up to `limit` letters of that reason (the scan goes past others). */
  list(limit: number, reason?: string): Promise<DeadLetter[]>;
  remove(ids: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
