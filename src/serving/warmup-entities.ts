import { parseEntityKey } from "../kv/keys.ts";
import type { KvNode } from "../kv/kv-node.ts";
import type { CompiledView, Registry } from "../registry/index.ts";

/**
 * The requests a start-up warm-up can send. Each shape warmed makes the code it
 * shares with the others more general (call sites that saw several request
 * kinds), so a server warmed with shapes its clients never send runs theirs
 * slower ever after: with every shape, single JSON lookups ran ~8% fewer per
 * second at saturation than with none (six alternating pairs); with `json`
 * alone, within noise of none; with `json,grpc` (the default, `grpc` only
 * where the gRPC edge is on), ~3.5% fewer than `json` alone (eight pairs,
 * 12-06), the price of not refusing gRPC calls while that path is cold.
 */
export const WARMUP_SHAPES = ["json", "batch", "msgpack", "feast", "grpc"] as const;
export type WarmupShape = (typeof WARMUP_SHAPES)[number];

/** One entity's join-key values by join-key name. */
export type SampledEntity = ReadonlyMap<string, number | string>;

/** Entities of one view for the start-up warm-up's lookups (each edge builds its own requests from them). */
export interface ViewSample {
  readonly view: CompiledView;
  readonly entities: readonly SampledEntity[];
  /** Read from the store (false: the view had none stored, the keys are made up). */
  readonly stored: boolean;
}

/**
 * Up to `perView` stored entities of every view that has features and join
 * keys, from a few scan pages each (the store's keys read back with
 * parseEntityKey); made-up keys for a view with none, so its lookups still run
 * the route, the parse, the plan and the encoders. Stops scanning at
 * `deadline` (a performance.now() time), and at the first page that fails
 * (a shard down, or a scan whose shard's primary became another process).
 */
export async function sampleViews(store: KvNode, registry: Registry, perView: number, deadline: number): Promise<ViewSample[]> {
  const out: ViewSample[] = [];
  for (const view of registry.views.values()) {
    if (view.features.length === 0 || view.joinKeys.length === 0) continue;
    const found = await sampleEntities(store, view, perView, deadline);
    out.push(found.length > 0 ? { view, entities: found, stored: true } : { view, entities: madeUpEntities(view), stored: false });
  }
  return out;
}

/** Up to `want` stored entities of `view`, from a few scan pages (stops at `deadline`, a performance.now() time). */
export async function sampleEntities(store: KvNode, view: CompiledView, want: number, deadline: number): Promise<SampledEntity[]> {
  const out: SampledEntity[] = [];
  let cursor = "0";
  for (let page = 0; page < 64 && out.length < want && performance.now() < deadline; page++) {
    let got: Awaited<ReturnType<KvNode["scan"]>>;
    try {
      got = await store.scan(cursor, 256, view.keyPrefix);
    } catch {
      // A shard down or hung at start: warm up on what was found (or made-up keys). Thrown, it ended the process
      // whenever a shard was out at start, though the server serves then (README, Failure behaviour).
      // A shard's primary that became another process mid-scan (ScanRestartError) stops it too, not restarts it:
      // warm-up is best effort and wants a few real keys, not every key; a restart would read the same keys again.
      break;
    }
    for (const key of got.keys) {
      if (!key.startsWith(view.keyPrefix)) continue;
      const entity = parseEntityKey(key.slice(view.keyPrefix.length));
      if (entity !== undefined && view.joinKeys.every((k) => entity.has(k.name))) out.push(entity);
      if (out.length >= want) break;
    }
    cursor = got.cursor;
    if (cursor === "0") break;
  }
  return out;
}

function madeUpEntities(view: CompiledView): SampledEntity[] {
  return Array.from({ length: 16 }, (_, i) => new Map(view.joinKeys.map((k) => [k.name, k.type === "int64" ? 1_000_000_000 + i : `warmup-${i}`])));
}
