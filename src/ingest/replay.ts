import type { DeadLetter, DeadLetterQueue } from "./dead-letters.ts";
import type { StreamPublisher } from "./stream-source.ts";

export interface ReplayOptions {
  readonly limit: number;
  /** The source whose letters go back on its stream: sources sharing a stream share its dead letters too. */
  readonly source: string;
  /** Only letters with this reason (e.g. `missing_field` after a mapping fix). */
  readonly reason?: string;
}

/**
 * Puts dead letters back on their source's stream, byte for byte, and removes
 * them from the dead-letter stream once the engine has them. Consumers then
 * map them with the current sources file; those still failing come back as
 * new dead letters.
 */
export async function replayDeadLetters(queue: DeadLetterQueue, publisher: StreamPublisher, options: ReplayOptions): Promise<DeadLetter[]> {
  const letters = await queue.list(options.limit, { source: options.source, ...(options.reason === undefined ? {} : { reason: options.reason }) });
  if (letters.length === 0) return [];
  await publisher.publish(letters.map((l) => l.payload));
  await queue.remove(letters.map((l) => l.id));
  return letters;
}
