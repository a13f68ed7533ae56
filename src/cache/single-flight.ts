import type { ReadSlot } from "../kv/kv-node.ts";

/** One batch read of L2-then-origin that concurrent requests for the same keys share. */
export interface Flight {
  readonly keys: readonly string[];
  /** Set once the flight finished; slot i answers keys[i]. */
  slots: ReadSlot[] | undefined;
  /** Origin nodes that could not answer, for every request that waited on this flight. */
  readonly degraded: string[];
  /** When the request that started the flight stops waiting (performance.now() ms; Infinity without a budget): the origin read is bounded by it. */
  readonly deadline: number;
  /** When the flight ended (performance.now() ms; Infinity while it runs). */
  endedAt: number;
  /**
   * Keys a write acknowledged while the flight read them, with the write's
   * event time: a row found older than that (or none) predates the write and
   * fills no cache.
   */
  superseded: Map<string, number> | undefined;
  done: Promise<void>;
}

/** Where a key's answer will come from: a flight and the key's position in it. */
/** May a flight's `row` for `key` fill a cache? Not when a write newer than it was acknowledged while it was read. */
export function fillable(flight: Flight, key: string, row: { readonly ts: number } | undefined): boolean {
  const floor = flight.superseded?.get(key);
  return floor === undefined || (row !== undefined && row.ts >= floor);
}

export interface FlightRef {
  readonly flight: Flight;
  readonly index: number;
}

/**
 * Keys with a read in flight. A request that misses L1 joins the flight
 * already reading a key instead of starting its own, so 100 concurrent
 * lookups of one cold key make one L2 read and one origin read. No promise
 * per key: a key maps to its batch and index.
 */
export class InFlight {
  private readonly byKey = new Map<string, FlightRef>();

  get(key: string): FlightRef | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Registers a new flight for `keys` (none of which may be in flight) and starts `run` on it. */
  start(keys: readonly string[], run: (flight: Flight) => Promise<void>, deadline = Number.POSITIVE_INFINITY): Flight {
    const flight: Flight = { keys, slots: undefined, degraded: [], deadline, endedAt: Number.POSITIVE_INFINITY, superseded: undefined, done: Promise.resolve() };
    for (let i = 0; i < keys.length; i++) this.byKey.set(keys[i]!, { flight, index: i });
    flight.done = run(flight).finally(() => {
      flight.endedAt = performance.now();
      for (const k of keys) if (this.byKey.get(k)?.flight === flight) this.byKey.delete(k);
    });
    return flight;
  }

  /**
   * A write of `key` at event time `ts` was acknowledged: its flight (if
   * any) may have read the row the write replaced. The flight keeps
   * answering the requests that joined it (they were asked before the
   * write), fills no cache with a row of that key older than `ts`, and later
   * requests start a read of their own: joining it answered a lookup made
   * after the write's 200 with the row from before it.
   */
  supersede(key: string, ts: number): void {
    const ref = this.byKey.get(key);
    if (ref === undefined) return;
    ref.flight.superseded ??= new Map();
    const superseded = ref.flight.superseded;
    superseded.set(key, Math.max(superseded.get(key) ?? Number.NEGATIVE_INFINITY, ts));
    this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
