import type { FeatureRef } from "../../registry/index.ts";

/** Feature lists longer than this are written anew each time (the resolver does not remember them either). */
const MAX_PREPARED = 64;

/**
 * Bytes an answer writer prepares once per feature list — the names part of
 * an answer's head — kept per refs array (by identity: resolve-features.ts
 * hands the same array to requests naming the same features, and a feature
 * service's array is the registry's) and per variant (short or full names,
 * JSON or MessagePack: the writer numbers them). Weakly held: a registry
 * reload drops its arrays and their bytes with them.
 */
export class PreparedNames {
  private readonly cache = new WeakMap<readonly FeatureRef[], (Uint8Array | undefined)[]>();

  constructor(private readonly variants: number) {}

  get(refs: readonly FeatureRef[], variant: number): Uint8Array | undefined {
    return this.cache.get(refs)?.[variant];
  }

  /** Keeps `bytes` (a copy the caller will not change) for the list; long lists are not kept. */
  set(refs: readonly FeatureRef[], variant: number, bytes: Uint8Array): void {
    if (refs.length > MAX_PREPARED) return;
    let slots = this.cache.get(refs);
    if (slots === undefined) {
      slots = new Array<Uint8Array | undefined>(this.variants).fill(undefined);
      this.cache.set(refs, slots);
    }
    slots[variant] = bytes;
  }
}
