import type { FeatureValue } from "../../kv/kv-node.ts";
import { storedInt64Or0, storedNumberOr0, storedStringLength, storedStringStart } from "../../kv/stored-value.ts";
import type { FeatureRef } from "../../registry/index.ts";
import { type RawRows, StoredValueGrid } from "../../serving/index.ts";
import { PreparedNames } from "../http/prepared-names.ts";
import { int64Or0, listOrEmpty, numberOr0 } from "./column-values.ts";
import { type Id, isZeroId, LIST_TAG, VALUE_TYPE } from "./encode-quiver.ts";
import { listBody, listContent, storedListContent, storedListCount, writeListBody, writeStoredListBody } from "./list-bodies.ts";
import { ProtoWriter } from "./proto-writer.ts";

const SHORT_NAMES = 0;
const FULL_NAMES = 1;

/**
 * quiver.v1.LookupResponse written from a single-view lookup's stored rows
 * (LookupService.lookupRaw over the embedded store): the same bytes
 * `encodeLookupResponse` writes for the decoded LookupResult, without
 * decoding a row into value objects or filling a LookupResult first. Numbers
 * are read where they are stored and written as varints or doubles, strings
 * are copied as their stored UTF-8; a value not of its column's type (stored
 * before a type change) is written as the decoding path writes it. A row
 * outside the shapes indexRowValues checks declines: `encode` answers
 * undefined and the caller decodes. Tests compare the two paths' bytes for
 * random rows.
 */
export class QuiverRowsEncoder {
  private readonly w = new ProtoWriter();
  /** The event-time column, the same in every feature column: written once per answer. */
  private readonly times = new ProtoWriter();
  private readonly names = new PreparedNames(2);
  private readonly grid = new StoredValueGrid();

  encode(rows: RawRows, full: boolean, id: Id): Uint8Array | undefined {
    const n = rows.rowCount;
    const refs = rows.refs;
    const nf = refs.length;
    if (!this.grid.locate(rows)) return undefined;
    const w = this.w.reset();
    if (!isZeroId(id)) w.uint32(8).uint64(id);
    w.raw(this.namesOf(refs, full));
    if (n !== 0) w.uint32(24).uint32(n);
    const times = this.timesOf(rows, n);
    for (let c = 0; c < nf; c++) {
      w.uint32(34).fork();
      this.column(rows, c, times);
      w.ldelim();
    }
    return w.finish();
  }

  /** `feature_names` (field 2), prepared once per feature list and name style. */
  private namesOf(refs: readonly FeatureRef[], full: boolean): Uint8Array {
    const variant = full ? FULL_NAMES : SHORT_NAMES;
    const ready = this.names.get(refs, variant);
    if (ready !== undefined) return ready;
    const w = new ProtoWriter();
    for (const ref of refs) w.uint32(18).string(full ? ref.feature.fullName : ref.feature.name);
    const bytes = w.finish();
    this.names.set(refs, variant, bytes);
    return bytes;
  }

  /** `event_timestamps_ms` (field 10) of a column: the row's event time for every feature (0 where no row). */
  private timesOf(rows: RawRows, n: number): Uint8Array {
    const t = this.times.reset();
    if (n === 0) return t.written();
    t.uint32(82).fork();
    for (let r = 0; r < n; r++) t.int64(rows.ts[r]!);
    t.ldelim();
    return t.written();
  }

  /** One FeatureColumn's fields, as writeColumn (encode-quiver.ts) writes them. */
  private column(rows: RawRows, c: number, times: Uint8Array): void {
    const w = this.w;
    const feature = rows.refs[c]!.feature;
    const kind = feature.type.kind;
    const n = rows.rowCount;
    const grid = this.grid;
    const dflt: FeatureValue = rows.fillDefaults ? feature.defaultValue : null;
    w.uint32(8).int32(VALUE_TYPE[kind]);
    if (n === 0) return;
    switch (kind) {
      case "int64": {
        w.uint32(18).fork();
        const d = int64Or0(dflt);
        for (let r = 0; r < n; r++) {
          const p = grid.offset(r, c);
          w.int64(p < 0 ? d : storedInt64Or0(rows.bytes[r]!, rows.views[r]!, p));
        }
        w.ldelim();
        break;
      }
      case "float64": {
        w.uint32(26).uint32(n * 8);
        const d = numberOr0(dflt);
        for (let r = 0; r < n; r++) {
          const p = grid.offset(r, c);
          w.double(p < 0 ? d : storedNumberOr0(rows.bytes[r]!, rows.views[r]!, p));
        }
        break;
      }
      case "string": {
        const d = typeof dflt === "string" ? dflt : "";
        for (let r = 0; r < n; r++) {
          const p = grid.offset(r, c);
          w.uint32(34);
          const bytes = rows.bytes[r];
          const len = p < 0 ? -1 : storedStringLength(bytes!, rows.views[r]!, p);
          if (len >= 0) {
            const s = storedStringStart(bytes!, p);
            w.stringBytes(bytes!, s, s + len);
          } else w.string(p < 0 ? d : "");
        }
        break;
      }
      case "bool":
        w.uint32(42).uint32(n);
        for (let r = 0; r < n; r++) {
          const p = grid.offset(r, c);
          w.bool(p < 0 ? dflt === true : rows.bytes[r]![p] === 0xc3);
        }
        break;
      case "int64[]":
      case "float64[]":
      case "embedding":
      case "string[]": {
        const tag = LIST_TAG[kind];
        const d = listOrEmpty(dflt);
        const dContent = listContent(kind, d);
        for (let r = 0; r < n; r++) {
          const p = grid.offset(r, c);
          if (p < 0) {
            w.uint32(tag).uint32(listBody(kind, d.length, dContent));
            writeListBody(w, kind, d, dContent);
          } else {
            const bytes = rows.bytes[r]!;
            const view = rows.views[r]!;
            const count = storedListCount(bytes, view, p);
            const content = storedListContent(kind, bytes, view, p, count);
            w.uint32(tag).uint32(listBody(kind, count, content));
            writeStoredListBody(w, kind, bytes, view, p, count, content);
          }
        }
        break;
      }
    }
    // Statuses are below 128: one byte each, so the packed length is the row count.
    w.uint32(74).uint32(n);
    for (let r = 0; r < n; r++) w.uint32(grid.status(rows, r, c));
    w.raw(times);
  }
}
