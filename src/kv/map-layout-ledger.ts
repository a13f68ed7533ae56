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
      for (const l of record) this.stored.set(l.field, l.layout);
      this.recorded();
    }
    return { mismatches, unreachable: [] };
  }

  /** Called after layouts were recorded (the file ledger writes itself out). */
  protected recorded(): void {}
}
