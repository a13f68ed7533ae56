import { type LayoutLedger, type LayoutMismatch, layoutVerdict, type LedgerOutcome, type ViewLayout } from "./layout-ledger.ts";

/**
 * A layout ledger held in memory: the memory-only store's (its rows live as
 * long as the process, and so does what it remembers of their layouts), and
 * the working copy of the file ledger. Records nothing when any layout conflicts.
 */
export class MapLayoutLedger implements LayoutLedger {
  constructor(
    protected readonly stored: Map<string, string> = new Map(),
    private readonly where = "this process's memory",
  ) {}

  async reconcile(layouts: readonly ViewLayout[]): Promise<LedgerOutcome> {
    const mismatches: LayoutMismatch[] = [];
    const record: ViewLayout[] = [];
    for (const l of layouts) {
      const verdict = layoutVerdict(this.stored.get(l.field), l.layout);
      if (verdict === "conflict") mismatches.push({ field: l.field, stored: this.stored.get(l.field)!, where: this.where });
      else if (verdict === "record") record.push(l);
    }
    if (mismatches.length === 0 && record.length > 0) {
      // Written out first, then remembered: the other way round, a write that failed (disk full) left memory ahead of
      // the file, a retried reload then found nothing to record, and a later start accepted another layout for the
      // rows written meanwhile (an int64 read back as a string feature, PRESENT).
      const next = new Map(this.stored);
      for (const l of record) next.set(l.field, l.layout);
      this.persist(next);
      for (const l of record) this.stored.set(l.field, l.layout);
    }
    return { mismatches, unreachable: [] };
  }

  /** Makes `next` (every layout, the new ones included) durable before it is remembered; throws when it cannot. */
  protected persist(_next: ReadonlyMap<string, string>): void {}
}
