import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MapLayoutLedger } from "./map-layout-ledger.ts";

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

  protected override recorded(): void {
    writeFileSync(`${this.file}.tmp`, `${JSON.stringify(Object.fromEntries(this.stored), null, 2)}\n`);
    renameSync(`${this.file}.tmp`, this.file);
  }
}

function readLedger(file: string): Record<string, string> {
  const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string")) {
    throw new Error(`${file}: expected {"<view>@<version>": "<feature layout>"}; move it aside to start afresh`);
  }
  return parsed as Record<string, string>;
}
