import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MapLayoutLedger } from "./map-layout-ledger.ts";
import { StorageError } from "./storage-errors.ts";

/**
 * The durable embedded store's layout ledger: `layouts.json` in its data
 * directory, `{"<view>@<version>": "<name>:<type>\n..."}`, read at start and
 * replaced whole when a layout is recorded (written aside, then renamed, so a
 * crash leaves the old file or the new).
 */
export class FileLayoutLedger extends MapLayoutLedger {
  private constructor(
    private readonly file: string,
    stored: Map<string, string>,
  ) {
    super(stored, file);
  }

  static open(dataDir: string): FileLayoutLedger {
    const file = join(dataDir, "layouts.json");
    return new FileLayoutLedger(file, new Map(Object.entries(existsSync(file) ? readLedger(file) : {})));
  }

  protected override persist(next: ReadonlyMap<string, string>): void {
    try {
      writeFileSync(`${this.file}.tmp`, `${JSON.stringify(Object.fromEntries(next), null, 2)}\n`);
      renameSync(`${this.file}.tmp`, this.file);
    } catch (e) {
      // The disk full or the directory read-only is storage's failure, retryable once fixed (a 503, not a 500 for a bug).
      const code = (e as { code?: unknown }).code;
      throw new StorageError(code === "ENOSPC" ? "storage_full" : "storage_write_failed", `${this.file}: could not record the registry's layouts: ${(e as Error).message}; nothing was changed`, true, e);
    }
  }
}

function readLedger(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    // A truncated or empty file said only "JSON Parse error: Unexpected EOF", naming no file.
    throw new Error(`${file}: not readable as JSON (${(e as Error).message}); restore it from a backup, or move it aside to start afresh (its layouts are then recorded anew)`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string")) {
    throw new Error(`${file}: expected {"<view>@<version>": "<feature layout>"}; move it aside to start afresh`);
  }
  return parsed as Record<string, string>;
}
