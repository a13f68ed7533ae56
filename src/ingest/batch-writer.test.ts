import { expect, test } from "bun:test";
import { ForwardingKvNode, type KvEntry, MemoryKvNode, type ReadSlot, type ReadsNow, UNAVAILABLE } from "../kv/index.ts";
import { MetricsRegistry } from "../ops/index.ts";
import { PushService } from "../serving/index.ts";
import { BatchWriter, type PreparedBatch } from "./batch-writer.ts";
import { IdempotencyWindow } from "./idempotency-window.ts";
import { IngestMetrics } from "./ingest-metrics.ts";

/** A store whose reads cannot answer (a shard timed out, say) while its writes go through. */
class UnreadableStore extends ForwardingKvNode {
  override get readsNow(): ReadsNow {
    return "never";
  }
  override getManyNow(): undefined {
    return undefined;
  }
  override async getMany(keys: readonly string[]): Promise<ReadSlot[]> {
    return keys.map(() => UNAVAILABLE);
  }
}

const entry = (key: string, ts: number, v: number): KvEntry => ({ key, row: { ts, values: [v] } });
const batchOf = (entries: KvEntry[]): PreparedBatch => ({ entries, views: entries.map(() => "v"), idempotencyKeys: entries.map(() => undefined), dead: [] });

function writerOn(store: MemoryKvNode | UnreadableStore): BatchWriter {
  const counters = new IngestMetrics(new MetricsRegistry({ defaultMetrics: false })).forSource("s");
  return new BatchWriter("s", new PushService(store, { maxFutureSkewMs: 60_000 }), store, new IdempotencyWindow(60_000), counters, () => 10_000);
}

test("replays and late events are told apart whether or not the stored rows could be read first", async () => {
  for (const readable of [true, false]) {
    const memory = new MemoryKvNode("m");
    await memory.putMany([entry("v/k=a", 100, 1), entry("v/k=b", 100, 1)]);
    const writer = writerOn(readable ? memory : new UnreadableStore(memory));
    // a: the stored event again (a redelivery); b: older than stored; c: new.
    const result = await writer.write(batchOf([entry("v/k=a", 100, 1), entry("v/k=b", 50, 2), entry("v/k=c", 100, 3)]));
    expect({ readable, ...result }).toEqual({ readable, written: 1, duplicate: 1, late: 1 });
    expect(await memory.getMany(["v/k=a", "v/k=b", "v/k=c"])).toEqual([
      { ts: 100, values: [1] },
      { ts: 100, values: [1] },
      { ts: 100, values: [3] },
    ]);
  }
});
