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
   * JSON), or only its first bytes (`cutFrom`: cut to fit the dead-letter
   * stream). Replayed, that JSON became a new event's payload and the letter,
   * the only copy of the entry, was deleted; a cut payload was published as
   * if it were the event, dead-lettered again as `undecodable` with no word
   * of the cut, and its letter deleted.
   */
  readonly kept: DeadLetter[];
}

/** Most kept letters a replay lists past to find `limit` it can replay. */
const MAX_KEPT_SCANNED = 10_000;

/**
 * Whether a letter's payload is the event as it came: not what an unreadable
 * entry held instead (`(entry).<field>`), nor its first bytes only (`cutFrom`).
 */
export function isReplayable(letter: DeadLetter): boolean {
  return letter.cutFrom === undefined && !letter.path.startsWith("(entry).");
}

/** Why `replayDeadLetters` kept a letter, and what to do instead. */
export function whyKept(letter: DeadLetter): string {
  if (letter.cutFrom !== undefined) {
    return `its payload is only the first ${letter.payload.length} of the event's ${letter.cutFrom} bytes (its error says why): publish the whole event again from its producer, then delete the letter`;
  }
  return `it is an entry that had no "${letter.path.slice("(entry).".length)}" field, and its letter holds the fields it had as JSON, not an event: publish the event again with its payload in that field, then delete the letter`;
}

/**
 * Puts dead letters back on their source's stream, byte for byte, and removes
 * them from the dead-letter stream once the engine has them. Consumers then
 * map them with the current sources file; those still failing come back as
 * new dead letters. Letters without the event's payload are kept (`kept`).
 */
export async function replayDeadLetters(queue: DeadLetterQueue, publisher: StreamPublisher, options: ReplayOptions): Promise<ReplayResult> {
  const filter = { source: options.source, ...(options.reason === undefined ? {} : { reason: options.reason }) };
  // Kept letters stay in the stream, oldest first: counted toward the limit, the oldest `limit` of them all kept made
  // every replay answer "replayed 0". The listing grows past them, up to MAX_KEPT_SCANNED of them.
  let letters: DeadLetter[] = [];
  for (let ask = options.limit; ; ask = Math.min(options.limit + MAX_KEPT_SCANNED, ask * 2)) {
    letters = await queue.list(ask, filter);
    const kept = letters.length - letters.filter(isReplayable).length;
    if (letters.length < ask || kept === 0 || ask >= options.limit + MAX_KEPT_SCANNED || letters.length - kept >= options.limit) break;
  }
  const replayed = letters.filter(isReplayable).slice(0, options.limit);
  const kept = letters.filter((l) => !isReplayable(l));
  if (replayed.length > 0) {
    await publisher.publish(replayed.map((l) => l.payload));
    await queue.remove(replayed.map((l) => l.id));
  }
  return { replayed, kept };
}
