import { ForwardingKvNode } from "../../src/kv/forwarding-node.ts";
import type { KvEntry, KvNode, PutOutcome, ReadContext, ReadSlot } from "../../src/kv/kv-node.ts";
import { UNAVAILABLE } from "../../src/kv/kv-node.ts";

/**
 * An origin for cache tests around a real node: counts reads, can hold reads
 * at a gate (to make requests overlap) and can answer UNAVAILABLE like a ring
 * whose shard is down. Not a mock of storage: the rows live in `inner`.
 */
export class TestOrigin extends ForwardingKvNode {
  override readonly id = "origin";
  reads = 0;
  keysRead = 0;
  /** Reads made while held with `readFirst` that have taken their rows (and wait at the gate). */
  readsTaken = 0;
  down = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  /** The real node holding the rows, for tests that write or read past the gate. */
  readonly rows: KvNode;

  constructor(inner: KvNode) {
    super(inner);
    this.rows = inner;
  }

  /** Every read goes through `getMany`, where it is counted (like a remote origin). */
  override get readsNow(): "never" {
    return "never";
  }
  override getManyNow(): undefined {
    return undefined;
  }
  override get rawNow(): undefined {
    return undefined;
  }

  /** Reads made while held answered what was stored when they were made (a read in flight while a write lands). */
  private answerBeforeGate = false;

  /** Holds every read until `release()`; `readFirst`: each read takes the rows first, then waits (its answer is then old). */
  hold(readFirst = false): void {
    this.answerBeforeGate = readFirst;
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  /** Writes made while writes are held that have landed on the inner node (and wait at the gate before answering). */
  writesLanded = 0;
  private writeGate: Promise<void> | undefined;
  private openWriteGate: (() => void) | undefined;

  /** Holds every write's answer until `releaseWrites()`: the rows land first (a write acknowledged late). */
  holdWrites(): void {
    this.writeGate = new Promise((resolve) => {
      this.openWriteGate = resolve;
    });
  }

  releaseWrites(): void {
    this.openWriteGate?.();
    this.writeGate = undefined;
  }

  override async putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    const out = await this.inner.putMany(entries, signal);
    if (this.writeGate) {
      this.writesLanded++;
      await this.writeGate;
    }
    return out;
  }

  override async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    this.reads++;
    this.keysRead += keys.length;
    if (this.gate && this.answerBeforeGate && !this.down) {
      const early = await this.inner.getMany(keys, ctx);
      this.readsTaken++;
      await this.gate;
      return early;
    }
    if (this.gate) await this.gate;
    if (this.down) {
      ctx?.degraded?.push("shard-1");
      return keys.map(() => UNAVAILABLE);
    }
    return this.inner.getMany(keys, ctx);
  }
}
