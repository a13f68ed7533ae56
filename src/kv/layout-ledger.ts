/**
 * The layout ledger's contract: what a store remembers of the layouts its rows
 * were served with, and the rule it applies. A row is its view's feature values
 * in declaration order under `<view>@<version>/` (README, "Storage layout"), so
 * under one version a list may grow at its end (stored rows read the new
 * features as null) or be cut back along the longest list recorded (rows'
 * extra values are ignored); reordering, renaming, retyping, or another feature
 * where a recorded one was, would have every stored row read as the wrong
 * features with status PRESENT. Implemented by every store: Redis shards (a
 * hash beside the rows), the durable embedded store (a file beside its
 * databases) and the memory-only one (a map, as long-lived as its rows).
 */

/** A view version's stored layout: `<view>@<version>` and its features as `name:type` lines, in order. */
export interface ViewLayout {
  readonly field: string;
  readonly layout: string;
}

/** A layout a store holds rows under that conflicts with the registry's (neither is the other with features appended). */
export interface LayoutMismatch {
  readonly field: string;
  readonly stored: string;
  /** Which store said so (a shard and its address, the ledger file, this process's memory). */
  readonly where: string;
}

/**
 * A store that remembers, beside its rows, the longest layout each view
 * version's rows were served with. Kept where the rows are, so a server
 * started on a changed registry file (or a second pod on another file) learns
 * what the store holds, which comparing with the registry it replaces cannot.
 */
export interface LayoutLedger {
  /**
   * Records `layouts` (each one new, or the stored one with features appended)
   * unless any of them conflicts with a stored layout: then records nothing and
   * answers the conflicts. A stored layout longer than the given one (a pod on
   * an older file, a rolled-back deploy) is kept and is no conflict. Places it
   * cannot reach are skipped (`unreachable`), so an outage does not stop a start.
   */
  reconcile(layouts: readonly ViewLayout[]): Promise<LedgerOutcome>;
}

export interface LedgerOutcome {
  readonly mismatches: readonly LayoutMismatch[];
  /** Places not consulted, with why (logged by the caller). */
  readonly unreachable: readonly string[];
}

/** Feature lines are separated by this; a layout appends to another when it starts with it and this. */
export const LAYOUT_LINE = "\n";

/** True when `longer` is `base` or `base` with features appended. */
export function layoutExtends(base: string, longer: string): boolean {
  return longer === base || longer.startsWith(base + LAYOUT_LINE);
}

/** What a reconciliation decides for one layout against what is stored: record it, keep the stored one, or a conflict. */
export function layoutVerdict(stored: string | undefined, wanted: string): "record" | "keep" | "conflict" {
  if (stored === undefined || (stored !== wanted && layoutExtends(stored, wanted))) return "record";
  return layoutExtends(wanted, stored) ? "keep" : "conflict";
}
