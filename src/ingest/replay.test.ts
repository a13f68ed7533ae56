import { expect, test } from "bun:test";
import type { DeadLetter, DeadLetterQueue, LetterFilter, NewDeadLetter } from "./dead-letters.ts";
import { letterPasses } from "./dead-letters.ts";
import { replayDeadLetters } from "./replay.ts";
import type { StreamPublisher } from "./stream-source.ts";

/** Dead letters in memory, listed oldest first as both engines list them. */
class MemoryDeadLetters implements DeadLetterQueue {
  letters: DeadLetter[] = [];
  private next = 1;
  async add(letters: readonly NewDeadLetter[]): Promise<number> {
    for (const l of letters) this.letters.push({ ...l, id: String(this.next++), at: 0 });
    return 0;
  }
  async list(limit: number, filter: LetterFilter = {}): Promise<DeadLetter[]> {
    return this.letters.filter((l) => letterPasses(filter, l.source, l.reason)).slice(0, limit);
  }
  async remove(ids: readonly string[]): Promise<void> {
    this.letters = this.letters.filter((l) => !ids.includes(l.id));
  }
  async close(): Promise<void> {}
}

const bytes = (s: string) => new TextEncoder().encode(s);

test("a replay past the oldest letters it must keep replays up to its limit of the others", async () => {
  const queue = new MemoryDeadLetters();
  // The oldest five: entries without the source's field, kept by every replay.
  for (let i = 0; i < 5; i++) await queue.add([{ source: "s", reason: "undecodable", path: "(entry).data", error: "no field", payload: bytes(`{"other":"${i}"}`), origin: `k${i}` }]);
  for (let i = 0; i < 3; i++) await queue.add([{ source: "s", reason: "missing_field", path: "customer", error: "missing", payload: bytes(`{"n":${i}}`), origin: `r${i}` }]);
  const published: string[] = [];
  const publisher: StreamPublisher = {
    publish: async (payloads) => {
      published.push(...payloads.map((p) => new TextDecoder().decode(p)));
    },
    close: async () => undefined,
  };
  const first = await replayDeadLetters(queue, publisher, { limit: 2, source: "s" });
  expect(first.replayed.map((l) => l.origin)).toEqual(["r0", "r1"]);
  expect(first.kept.map((l) => l.origin)).toEqual(["k0", "k1", "k2", "k3", "k4"]);
  const second = await replayDeadLetters(queue, publisher, { limit: 2, source: "s" });
  expect(second.replayed.map((l) => l.origin)).toEqual(["r2"]);
  expect(published).toEqual(['{"n":0}', '{"n":1}', '{"n":2}']);
  expect(queue.letters.map((l) => l.origin)).toEqual(["k0", "k1", "k2", "k3", "k4"]);
});
