import { expect, test } from "bun:test";
import type { DeadLetter, DeadLetterQueue, LetterFilter, NewDeadLetter } from "./dead-letters.ts";
import { deadLetterOf, letterPasses } from "./dead-letters.ts";
import { replayDeadLetters, whyKept } from "./replay.ts";
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

test("a letter whose payload was cut to fit is kept, never replayed as if it were the event; letters cut before the cut field existed are known by their note", async () => {
  const queue = new MemoryDeadLetters();
  await queue.add([{ source: "s", reason: "missing_field", path: "customer", error: "missing", payload: bytes('{"amount":1,"pad":"xx'), origin: "cut", cutFrom: 1_048_000 }]);
  await queue.add([{ source: "s", reason: "missing_field", path: "customer", error: "missing", payload: bytes('{"n":1}'), origin: "whole" }]);
  // As a NATS queue listed one written before 12-07: no cut field, the note at the end of its error.
  const legacy = deadLetterOf("7", (f) => ({ source: "s", reason: "invalid_value", path: "amount", error: "not a number (payload cut from 1048000 to 10 bytes to fit the dead-letter stream)", origin: "old", at: "0", cut: "" })[f], bytes("0123456789"));
  expect(legacy.cutFrom).toBe(1_048_000);
  queue.letters.push(legacy);
  // The same note on a payload of another length is not this letter's cut (an error quoting a producer's text).
  expect(deadLetterOf("8", (f) => ({ error: "(payload cut from 99 to 5 bytes to fit the dead-letter stream)", cut: "" })[f as "error"] ?? "", bytes("0123456789")).cutFrom).toBeUndefined();
  const published: string[] = [];
  const publisher: StreamPublisher = {
    publish: async (payloads) => {
      published.push(...payloads.map((p) => new TextDecoder().decode(p)));
    },
    close: async () => undefined,
  };
  const { replayed, kept } = await replayDeadLetters(queue, publisher, { limit: 10, source: "s" });
  expect(replayed.map((l) => l.origin)).toEqual(["whole"]);
  expect(kept.map((l) => l.origin)).toEqual(["cut", "old"]);
  expect(published).toEqual(['{"n":1}']);
  expect(whyKept(kept[0]!)).toContain("its payload is only the first 21 of the event's 1048000 bytes");
  expect(queue.letters.map((l) => l.origin)).toEqual(["cut", "old"]);
});
