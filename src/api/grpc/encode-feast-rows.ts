import { storedInt64Or0, storedNumberOr0, storedStringLength, storedStringStart } from "../../kv/stored-value.ts";
import { type RawRows, StoredValueGrid } from "../../serving/index.ts";
import { FEAST_STATUS, FeastWriter, type KeyVector, VALUE_LIST_TAG, type ViewVersion, writeMissingValue, writeTimestamp } from "./encode-feast.ts";
import { listBody, storedListContent, storedListCount, writeStoredListBody } from "./list-bodies.ts";
import { ProtoWriter } from "./proto-writer.ts";
import { int64Size, nested } from "./wire-size.ts";

/**
 * feast.serving.GetOnlineFeaturesResponse written from a single-view
 * lookup's stored rows (LookupService.lookupRaw over the embedded store):
 * the same bytes FeastResponseEncoder writes for the decoded LookupResult,
 * without decoding rows into value objects. Each stored value becomes a
 * feast.types.Value in its column's oneof, numbers read in place, strings
 * copied as their stored UTF-8; Feast fills no defaults, so a missing or
 * null value is a Value with no field set; a value not of its column's type is written as
 * the decoding path writes it (column-values.ts). The row's event time is
 * written once per answer and copied into every vector. Declines (undefined)
 * only for rows outside the checked shapes; tests compare the two paths.
 */
export class FeastRowsEncoder {
  private readonly out: FeastWriter;
  private readonly grid = new StoredValueGrid();
  /** `event_timestamps` of a vector (the same in every vector of an answer), written once per answer. */
  private readonly times = new ProtoWriter();

  constructor(valueType: import("protobufjs").Type) {
    this.out = new FeastWriter(valueType);
  }

  encode(rows: RawRows, keys: readonly KeyVector[], names: readonly string[], viewVersions?: readonly ViewVersion[]): Uint8Array | undefined {
    // Feast fills no defaults (FEAST_LOOKUP); a lookup that asks for them is not Feast's.
    if (rows.fillDefaults || !this.grid.locate(rows)) return undefined;
    const n = rows.rowCount;
    const times = this.timesOf(rows, n);
    const w = this.out.head(keys, names, n, viewVersions);
    const nf = rows.refs.length;
    for (let c = 0; c < nf; c++) {
      w.uint32(18).fork();
      this.vector(w, rows, c);
      if (n > 0) w.uint32(18).uint32(n);
      for (let r = 0; r < n; r++) w.uint32(FEAST_STATUS[this.grid.status(rows, r, c)]!);
      w.raw(times);
      w.ldelim();
    }
    return this.out.finish();
  }

  private timesOf(rows: RawRows, n: number): Uint8Array {
    const t = this.times.reset();
    for (let r = 0; r < n; r++) writeTimestamp(t, rows.ts[r]!);
    return t.written();
  }

  /** Feature c's `values`: one Value per row. */
  private vector(w: ProtoWriter, rows: RawRows, c: number): void {
    const n = rows.rowCount;
    const grid = this.grid;
    const kind = rows.refs[c]!.feature.type.kind;
    for (let r = 0; r < n; r++) {
      const p = grid.offset(r, c);
      if (p < 0) {
        writeMissingValue(w);
        continue;
      }
      const bytes = rows.bytes[r]!;
      const view = rows.views[r]!;
      switch (kind) {
        case "int64": {
          const v = storedInt64Or0(bytes, view, p);
          w.uint32(10).uint32(1 + int64Size(v)).uint32(32).int64(v);
          break;
        }
        case "float64":
          w.uint32(10).uint32(9).uint32(41).double(storedNumberOr0(bytes, view, p));
          break;
        case "string": {
          const len = Math.max(0, storedStringLength(bytes, view, p));
          const s = len === 0 ? p : storedStringStart(bytes, p);
          w.uint32(10).uint32(nested(1, len)).uint32(18).stringBytes(bytes, s, s + len);
          break;
        }
        case "bool":
          w.uint32(10).uint32(2).uint32(56).bool(bytes[p] === 0xc3);
          break;
        case "int64[]":
        case "float64[]":
        case "embedding":
        case "string[]": {
          const count = storedListCount(bytes, view, p);
          const content = storedListContent(kind, bytes, view, p, count);
          const body = listBody(kind, count, content);
          w.uint32(10).uint32(nested(1, body)).uint32(VALUE_LIST_TAG[kind]).uint32(body);
          writeStoredListBody(w, kind, bytes, view, p, count, content);
          break;
        }
      }
    }
  }
}
