import type { KvNode } from "../../src/kv/kv-node.ts";
import { ColumnEntities, type LookupService } from "../../src/serving/index.ts";

/**
 * The policy-overhead measurement's data and loop, shared by the resilience
 * suite (part 1) and bench/policy-overhead.ts (that part alone): ENTITIES
 * drivers, CONCURRENCY closed loops of single-entity lookups through
 * LookupService.
 */
export const POLICY_ENTITIES = 10_000;
export const POLICY_CONCURRENCY = 32;

export type Refs = Parameters<LookupService["lookup"]>[0]["refs"];

/** A single-entity lookup of `refs` for driver `id`. */
export const query = (refs: Refs, id: number) => ({ refs, entities: new ColumnEntities({ driver_id: [id] }, "entities"), fillDefaults: true });

/** Lookups per second with POLICY_CONCURRENCY loops for `seconds`. */
export async function closedLoop(service: LookupService, refs: Refs, seconds: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: POLICY_CONCURRENCY }, async (_, w) => {
      for (let i = w; performance.now() < end && i < 50_000_000; i += POLICY_CONCURRENCY) {
        await service.lookup(query(refs, 1001 + (i % POLICY_ENTITIES)), { deadline: performance.now() + 1000 });
        done++;
      }
    }),
  );
  return done / seconds;
}

/** Writes POLICY_ENTITIES driver rows of `width` values (the first set, the rest null) under `prefix`, 1,000 a batch. */
export async function loadRows(store: KvNode, prefix: string, width: number): Promise<void> {
  for (let start = 0; start < POLICY_ENTITIES; start += 1000) {
    const batch = Array.from({ length: 1000 }, (_, j) => ({
      key: `${prefix}driver_id=i${1001 + start + j}`,
      row: { ts: Date.now(), values: Array.from({ length: width }, (_, c) => (c === 0 ? (start + j) / POLICY_ENTITIES : null)) },
    }));
    await store.putMany(batch);
  }
}
