import type { DeadLetter, DeadLetterQueue } from "./dead-letters.ts";
import type { StreamPublisher } from "./stream-source.ts";

export interface ReplayOptions {
  readonly limit: number;
  /** The source whose letters go back on its stream: sources sharing a stream share its dead letters too. */
  readonly source: string;
  /** Only letters with this reason (e.g. `missing_field` after a mapping fix). */
  readonly reason?: string;
}

export interface ReplayResult {
  /** Put back on the stream and removed from dead letters. */
  readonly replayed: DeadLetter[];
  /**
   * Left in dead letters: their payload is not the event's (a Redis entry
   * without the source's field, whose letter shows the fields it had as
   * JSON). Replayed, that JSON became a new event's payload and the letter,
   * the only copy of the entry, was deleted.
   */
  readonly kept: DeadLetter[];
}

/** Whether a letter's payload is the event as it came (not what an unreadable entry held instead: `(entry).<field>`). */
export function isReplayable(letter: DeadLetter): boolean {
  return !letter.path.startsWith("(entry).");
}

/**
 * Puts dead letters back on their source's stream, byte for byte, and removes
 * them from the dead-letter stream once the engine has them. Consumers then
 * map them with the current sources file; those still failing come back as
 * new dead letters. Letters without the event's payload are kept (`kept`).
 */
export async function replayDeadLetters(queue: DeadLetterQueue, publisher: StreamPublisher, options: ReplayOptions): Promise<ReplayResult> {
  const letters = await queue.list(options.limit, { source: options.source, ...(options.reason === undefined ? {} : { reason: options.reason }) });
  const replayed = letters.filter(isReplayable);
  const kept = letters.filter((l) => !isReplayable(l));
  if (replayed.length > 0) {
    await publisher.publish(replayed.map((l) => l.payload));
    await queue.remove(replayed.map((l) => l.id));
  }
  return { replayed, kept };
}
