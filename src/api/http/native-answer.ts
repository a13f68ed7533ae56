import { indexRowValues, rowValueCount, rowValuesStart } from "../../kv/row-index.ts";
import type { FeatureRef } from "../../registry/index.ts";
import { type LookupResult, type RawRows, STATUS_NAMES, Status } from "../../serving/index.ts";
import { ByteWriter } from "./byte-writer.ts";
import { COMMA, J_FALSE, J_TRUE, jsonDouble, jsonDoubleNumber, jsonNumber, jsonString, jsonValue } from "./json-bytes.ts";
import { mpArrayHeader, mpDouble, mpString, mpTime, mpValue } from "./msgpack-bytes.ts";
import { PreparedNames } from "./prepared-names.ts";
import { storedJson } from "./stored-json.ts";
import { storedFloatsExact, storedMsgpackDouble } from "./stored-msgpack.ts";

/**
 * Writes /v1/lookup's answer — `{"featureNames": [...], "rows": [{"values",
 * "statuses", "eventTimestamps", "stale"?}, ...]}` — straight from the flat LookupResult
 * into bytes, in JSON or MessagePack. The same document `JSON.stringify` /
 * `@msgpack/msgpack` would produce from `nativeBody`, without building the
 * object tree (arrays and an object per row), the serialiser's string or
 * number strings for integers: constant parts are prepared bytes, integers
 * are written digit by digit, status names are prepared per status code;
 * except that a float feature's numbers (`CompiledFeature.floats`) are
 * floats in every answer: MessagePack float 64 (a whole 2.0 too, which the
 * serialiser and stored rows write as the integer 2; stored-msgpack.ts), JSON
 * `2.0` and `-0.0` (jsonDouble, as Feast's route writes them).
 *
 * The bytes returned are a view of the encoder's buffer, valid until its next
 * call: hand them to `new Response` (which copies) before encoding again.
 * Measured with `npm run bench -- lookup-alloc` (bytes per lookup, in-process).
 */
export class NativeAnswerEncoder {
  private readonly out = new ByteWriter();
  /** Each feature list's names, ready to copy (HEAD_* variants). */
  private readonly heads = new PreparedNames(4);
  /** Value offsets of the stored row being written (see indexRowValues); rows wider than this take the decoding path. */
  private readonly offsets = new Int32Array(4097);
  /** Per-feature statuses of the row being written. */
  private rowStatus = new Uint8Array(64);
  /** Per requested feature of the answer being written: 1 when it holds floats (CompiledFeature.floats). */
  private floatFlags = new Uint8Array(64);

  /**
   * The same JSON answer as `json`, written from the stored bytes of a
   * single-view lookup (LookupService.lookupRaw): stored values are
   * transcoded (stored-json.ts), defaults and statuses follow `fill`'s rules.
   * Undefined when a row holds bytes outside the checked shapes (the caller
   * decodes instead). Byte-identical to `json` (native-answer.test.ts).
   */
  jsonRows(rows: RawRows, full: boolean): Uint8Array | undefined {
    const w = this.out;
    w.reset();
    const refs = rows.refs;
    const nf = refs.length;
    this.jsonHead(refs, full);
    const st = this.statusScratch(nf);
    const offsets = this.offsets;
    const inOrder = inStoredOrder(refs);
    for (let r = 0; r < rows.rowCount; r++) {
      w.bytes(r === 0 ? J_ROW_FIRST : J_ROW_NEXT);
      const bytes = rows.bytes[r];
      const written = inOrder && bytes !== undefined ? this.jsonValuesInOrder(rows, r, st) : NOT_WRITTEN;
      if (written === DECLINED) return undefined;
      if (written === NOT_WRITTEN) {
        const count = this.indexRow(rows, r);
        if (count < 0) return undefined;
        const rowStatus = rows.status[r]!;
        for (let c = 0; c < nf; c++) {
          if (c > 0) w.byte(COMMA);
          const feature = refs[c]!.feature;
          const fi = feature.index;
          if (bytes !== undefined && fi < count && bytes[offsets[fi]!] !== NIL) {
            storedJson(w, bytes, rows.views[r]!, offsets[fi]!, offsets[fi + 1]!, feature.floats);
            st[c] = rowStatus;
          } else {
            jsonDefault(w, feature, rows.fillDefaults);
            st[c] = bytes === undefined ? Status.NOT_FOUND : Status.NULL_VALUE;
          }
        }
      }
      jsonStatuses(w, st, 0, nf);
      // Every feature of a single-view row has the row's event time (0 when not found).
      const tsStart = w.pos;
      jsonNumber(w, rows.ts[r]!);
      const tsEnd = w.pos;
      for (let c = 1; c < nf; c++) {
        w.byte(COMMA);
        w.again(tsStart, tsEnd);
      }
      w.bytes(J_ROW_CLOSE);
    }
    w.bytes(J_CLOSE);
    return w.written();
  }

  /** The same MessagePack answer as `msgpack`, from the stored bytes: stored values are copied as they are. */
  msgpackRows(rows: RawRows, full: boolean): Uint8Array | undefined {
    const w = this.out;
    w.reset();
    const refs = rows.refs;
    const nf = refs.length;
    w.bytes(M_OPEN_NAMES);
    this.msgpackNames(refs, full);
    mpArrayHeader(w, rows.rowCount);
    const st = this.statusScratch(nf);
    const floats = this.floatsOf(refs);
    const offsets = this.offsets;
    const inOrder = inStoredOrder(refs);
    for (let r = 0; r < rows.rowCount; r++) {
      w.bytes(M_ROW_VALUES);
      mpArrayHeader(w, nf);
      const bytes = rows.bytes[r];
      const count = this.indexRow(rows, r);
      if (count < 0) return undefined;
      const rowStatus = rows.status[r]!;
      if (inOrder && count === nf && bytes !== undefined && this.wholeRow(bytes, nf, rows.fillDefaults, rowStatus, st)) {
        // The stored values are the answer's values: one copy, or a few around float numbers stored as integers.
        this.copyRow(bytes, rows.views[r]!, nf, floats);
      } else {
        for (let c = 0; c < nf; c++) {
          const feature = refs[c]!.feature;
          const fi = feature.index;
          if (bytes !== undefined && fi < count && bytes[offsets[fi]!] !== NIL) {
            // A float feature's numbers stored as integers (a whole 2.0) are written as float 64.
            if (feature.floats) storedMsgpackDouble(w, bytes, rows.views[r]!, offsets[fi]!, offsets[fi + 1]!);
            else w.copy(bytes, offsets[fi]!, offsets[fi + 1]!);
            st[c] = rowStatus;
          } else {
            const d = rows.fillDefaults ? feature.defaultValue : null;
            if (feature.floats) mpDouble(w, d);
            else mpValue(w, d);
            st[c] = bytes === undefined ? Status.NOT_FOUND : Status.NULL_VALUE;
          }
        }
      }
      msgpackStatuses(w, st, 0, nf);
      const tsStart = w.pos;
      mpTime(w, rows.ts[r]!);
      const tsEnd = w.pos;
      for (let c = 1; c < nf; c++) w.again(tsStart, tsEnd);
    }
    return w.written();
  }

  /**
   * Row r's values when the request names its view's features in stored
   * order (`inStoredOrder`): transcoded in one pass over the row, each value
   * checked as it is written, instead of indexing the row first. WRITTEN;
   * NOT_WRITTEN, having written nothing, for a row holding more values than
   * requested (the indexed path checks the rest); DECLINED for bytes outside
   * the checked shapes (the caller drops the half-written answer).
   */
  private jsonValuesInOrder(rows: RawRows, r: number, st: Uint8Array): number {
    const w = this.out;
    const bytes = rows.bytes[r]!;
    const view = rows.views[r]!;
    const start = rows.start[r]!;
    const end = rows.end[r]!;
    let p = rowValuesStart(bytes, start, end);
    if (p < 0) return DECLINED;
    const refs = rows.refs;
    const nf = refs.length;
    const count = rowValueCount(bytes, view, start);
    if (count > nf) return NOT_WRITTEN;
    const rowStatus = rows.status[r]!;
    for (let c = 0; c < nf; c++) {
      if (c > 0) w.byte(COMMA);
      const feature = refs[c]!.feature;
      if (c < count) {
        if (p >= end) return DECLINED;
        const b = bytes[p]!;
        if (b === FLOAT64 && p + 9 <= end) {
          // The commonest stored value (rates, scores), written without storedJson's dispatch.
          const d = view.getFloat64(p + 1);
          if (feature.floats) jsonDoubleNumber(w, d);
          else jsonNumber(w, d);
          p += 9;
          st[c] = rowStatus;
          continue;
        }
        if (b !== NIL) {
          p = storedJson(w, bytes, view, p, end, feature.floats);
          if (p < 0) return DECLINED;
          st[c] = rowStatus;
          continue;
        }
        p++;
      }
      // A null, or a feature added after the row was written: as the indexed path.
      jsonDefault(w, feature, rows.fillDefaults);
      st[c] = Status.NULL_VALUE;
    }
    return p === end ? WRITTEN : DECLINED;
  }

  /**
   * For a row indexed into `offsets` holding exactly the requested features
   * in stored order: sets their statuses and answers true when every stored
   * value is also the answer's value — none is nil, or nil stays nil (no
   * defaults filled), as MessagePack writes null the same either way.
   */
  private wholeRow(bytes: Uint8Array, nf: number, fillDefaults: boolean, rowStatus: number, st: Uint8Array): boolean {
    const offsets = this.offsets;
    for (let c = 0; c < nf; c++) {
      if (bytes[offsets[c]!] !== NIL) st[c] = rowStatus;
      else if (fillDefaults) return false;
      else st[c] = Status.NULL_VALUE;
    }
    return true;
  }

  /**
   * A whole row's values (see wholeRow) as one copy of the stored bytes,
   * unless a float feature's number is stored as an integer (a whole 2.0,
   * as every version stores it): then the bytes around it are copied and it
   * is written as float 64 (stored-msgpack.ts). One type byte read per float
   * feature when its value is a float 64 (the common case).
   */
  private copyRow(bytes: Uint8Array, view: DataView, nf: number, floats: Uint8Array): void {
    const w = this.out;
    const offsets = this.offsets;
    let run = offsets[0]!;
    for (let c = 0; c < nf; c++) {
      if (floats[c] === 0) continue;
      const p = offsets[c]!;
      if (bytes[p] === FLOAT64) continue;
      const end = offsets[c + 1]!;
      if (storedFloatsExact(bytes, view, p, end)) continue;
      if (p > run) w.copy(bytes, run, p);
      storedMsgpackDouble(w, bytes, view, p, end);
      run = end;
    }
    w.copy(bytes, run, offsets[nf]!);
  }

  /** 1 per requested feature that holds floats, 0 for the others: read once per answer, not per row. */
  private floatsOf(refs: readonly FeatureRef[]): Uint8Array {
    if (this.floatFlags.length < refs.length) this.floatFlags = new Uint8Array(refs.length);
    const flags = this.floatFlags;
    for (let c = 0; c < refs.length; c++) flags[c] = refs[c]!.feature.floats ? 1 : 0;
    return flags;
  }

  /** Indexes row r's stored values into `offsets`: their count, 0 for a row not found, -1 to decline (see indexRowValues). */
  private indexRow(rows: RawRows, r: number): number {
    const bytes = rows.bytes[r];
    return bytes === undefined ? 0 : indexRowValues(bytes, rows.views[r]!, rows.start[r]!, rows.end[r]!, this.offsets);
  }

  /** `{"featureNames":[...],"rows":[`, prepared once per feature list. */
  private jsonHead(refs: readonly FeatureRef[], full: boolean): void {
    const w = this.out;
    const variant = full ? HEAD_JSON_FULL : HEAD_JSON;
    if (this.copyPrepared(refs, variant)) return;
    const start = w.pos;
    w.bytes(J_OPEN_NAMES);
    for (let c = 0; c < refs.length; c++) {
      if (c > 0) w.byte(COMMA);
      const f = refs[c]!.feature;
      jsonString(w, full ? f.fullName : f.name);
    }
    w.bytes(J_ROWS);
    this.heads.set(refs, variant, w.slice(start, w.pos));
  }

  /** The feature names array and the `rows` key, after the answer's map header; prepared once per feature list. */
  private msgpackNames(refs: readonly FeatureRef[], full: boolean): void {
    const w = this.out;
    const variant = full ? HEAD_MSGPACK_FULL : HEAD_MSGPACK;
    if (this.copyPrepared(refs, variant)) return;
    const start = w.pos;
    mpArrayHeader(w, refs.length);
    for (let c = 0; c < refs.length; c++) {
      const f = refs[c]!.feature;
      mpString(w, full ? f.fullName : f.name);
    }
    w.bytes(M_ROWS);
    this.heads.set(refs, variant, w.slice(start, w.pos));
  }

  /** Writes the list's prepared names for `variant` when there are some; false when they must be written (and kept). */
  private copyPrepared(refs: readonly FeatureRef[], variant: number): boolean {
    const ready = this.heads.get(refs, variant);
    if (ready === undefined) return false;
    this.out.bytes(ready);
    return true;
  }

  private statusScratch(nf: number): Uint8Array {
    if (this.rowStatus.length < nf) this.rowStatus = new Uint8Array(nf);
    return this.rowStatus;
  }

  json(result: LookupResult, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    const refs = result.refs;
    const nf = refs.length;
    this.jsonHead(refs, full);
    const { values, statuses, timestamps, stale } = result;
    for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) {
      w.bytes(r === 0 ? J_ROW_FIRST : J_ROW_NEXT);
      for (let c = 0; c < nf; c++) {
        if (c > 0) w.byte(COMMA);
        if (refs[c]!.feature.floats) jsonDouble(w, values[base + c]);
        else jsonValue(w, values[base + c]);
      }
      jsonStatuses(w, statuses, base, nf);
      // A row's features mostly share one event time: write it once, copy it after.
      let lastTs = Number.NaN;
      let lastStart = 0;
      let lastEnd = 0;
      for (let c = 0; c < nf; c++) {
        if (c > 0) w.byte(COMMA);
        const ts = timestamps[base + c]!;
        if (ts === lastTs) {
          w.again(lastStart, lastEnd);
          continue;
        }
        lastTs = ts;
        lastStart = w.pos;
        jsonNumber(w, ts);
        lastEnd = w.pos;
      }
      if (stale !== undefined) {
        // Values a cache served from its grace window because storage could not answer (rare).
        w.bytes(J_STALE);
        for (let c = 0; c < nf; c++) {
          if (c > 0) w.byte(COMMA);
          w.bytes(stale[base + c] === 1 ? J_TRUE : J_FALSE);
        }
      }
      w.bytes(J_ROW_CLOSE);
    }
    if (result.degraded.length > 0) {
      // Only when some shard could not answer: the healthy answer keeps its shape.
      w.bytes(J_DEGRADED);
      result.degraded.forEach((id, i) => {
        if (i > 0) w.byte(COMMA);
        jsonString(w, id);
      });
    }
    w.bytes(J_CLOSE);
    return w.written();
  }

  msgpack(result: LookupResult, full: boolean): Uint8Array {
    const w = this.out;
    w.reset();
    const degraded = result.degraded;
    w.bytes(degraded.length > 0 ? M_OPEN_NAMES_DEGRADED : M_OPEN_NAMES);
    const refs = result.refs;
    const nf = refs.length;
    this.msgpackNames(refs, full);
    mpArrayHeader(w, result.rowCount);
    const { values, statuses, timestamps, stale } = result;
    for (let r = 0, base = 0; r < result.rowCount; r++, base += nf) {
      w.bytes(stale === undefined ? M_ROW_VALUES : M_ROW_VALUES_STALE);
      mpArrayHeader(w, nf);
      for (let c = 0; c < nf; c++) {
        if (refs[c]!.feature.floats) mpDouble(w, values[base + c]);
        else mpValue(w, values[base + c]);
      }
      msgpackStatuses(w, statuses, base, nf);
      for (let c = 0; c < nf; c++) mpTime(w, timestamps[base + c]!);
      if (stale !== undefined) {
        w.bytes(M_STALE);
        mpArrayHeader(w, nf);
        for (let c = 0; c < nf; c++) w.u8(stale[base + c] === 1 ? 0xc3 : 0xc2);
      }
    }
    if (degraded.length > 0) {
      w.bytes(M_DEGRADED);
      mpArrayHeader(w, degraded.length);
      for (const id of degraded) mpString(w, id);
    }
    return w.written();
  }
}

/**
 * `],"statuses":[...],"eventTimestamps":[` for one row: `nf` status codes
 * from `codes[base..]`. A row whose features share one status (most rows:
 * all PRESENT) is one prepared fragment, copied at once.
 */
function jsonStatuses(w: ByteWriter, codes: Uint8Array, base: number, nf: number): void {
  const shared = sharedStatus(codes, base, nf);
  if (shared >= 0) w.bytes(JSON_UNIFORM.get(shared, nf));
  else jsonStatusList(w, codes, base, nf);
}

/** jsonStatuses written code by code (also how the prepared fragments are built). */
function jsonStatusList(w: ByteWriter, codes: Uint8Array, base: number, nf: number): void {
  w.bytes(J_STATUSES);
  for (let c = 0; c < nf; c++) {
    if (c > 0) w.byte(COMMA);
    w.bytes(J_STATUS[codes[base + c]!]!);
  }
  w.bytes(J_TIMESTAMPS);
}

/**
 * The MessagePack counterpart: the `statuses` key and array of `nf` codes
 * from `codes[base..]`, then the `eventTimestamps` key and its array header;
 * a row whose features share one status is one prepared fragment.
 */
function msgpackStatuses(w: ByteWriter, codes: Uint8Array, base: number, nf: number): void {
  const shared = sharedStatus(codes, base, nf);
  if (shared >= 0) w.bytes(MSGPACK_UNIFORM.get(shared, nf));
  else msgpackStatusList(w, codes, base, nf);
}

/** msgpackStatuses written code by code (also how the prepared fragments are built). */
function msgpackStatusList(w: ByteWriter, codes: Uint8Array, base: number, nf: number): void {
  w.bytes(M_STATUSES);
  mpArrayHeader(w, nf);
  for (let c = 0; c < nf; c++) w.bytes(M_STATUS[codes[base + c]!]!);
  w.bytes(M_TIMESTAMPS);
  mpArrayHeader(w, nf);
}

/** The status all `nf` codes from `codes[base..]` share, or -1 (mixed, or a row wider than MAX_UNIFORM). */
function sharedStatus(codes: Uint8Array, base: number, nf: number): number {
  if (nf === 0 || nf > MAX_UNIFORM) return -1;
  const first = codes[base]!;
  for (let c = 1; c < nf; c++) if (codes[base + c] !== first) return -1;
  return first;
}

/** Rows this wide or narrower have their uniform statuses prepared. */
const MAX_UNIFORM = 64;

/**
 * A row's statuses when all its features share one, prepared by status code
 * and width and built on first use. Each width array is dense from the
 * start: an empty array given index 10 goes sparse, and every read of it left
 * JIT code for the runtime (~0.3 us per single lookup in a server profile).
 */
class UniformStatuses {
  private readonly byCode = STATUS_NAMES.map(() => new Array<Uint8Array | undefined>(MAX_UNIFORM + 1).fill(undefined));

  /** `list` writes a row's statuses code by code: the fragment is its output for `nf` equal codes, so both spell it alike. */
  constructor(private readonly list: (w: ByteWriter, codes: Uint8Array, base: number, nf: number) => void) {}

  get(code: number, nf: number): Uint8Array {
    const ready = this.byCode[code]![nf];
    if (ready !== undefined) return ready;
    const w = new ByteWriter(256);
    this.list(w, new Uint8Array(nf).fill(code), 0, nf);
    const bytes = w.slice(0, w.pos);
    this.byCode[code]![nf] = bytes;
    return bytes;
  }
}

/** `],"statuses":[s,s,...],"eventTimestamps":[`. */
const JSON_UNIFORM = new UniformStatuses(jsonStatusList);

/** The `statuses` key and array, the `eventTimestamps` key and its array header. */
const MSGPACK_UNIFORM = new UniformStatuses(msgpackStatusList);

/** MessagePack nil: a value stored as null. */
const NIL = 0xc0;
/** MessagePack float 64: a stored double. */
const FLOAT64 = 0xcb;
/** What jsonValuesInOrder did with a row. */
const WRITTEN = 1;
const NOT_WRITTEN = 0;
const DECLINED = -1;

/** A missing or null value: the feature's default (or null), a float feature's as a float. */
function jsonDefault(w: ByteWriter, feature: FeatureRef["feature"], fillDefaults: boolean): void {
  const d = fillDefaults ? feature.defaultValue : null;
  if (feature.floats) jsonDouble(w, d);
  else jsonValue(w, d);
}

/** Does a request name features 0, 1, 2, ... of its view, in that order (stored rows hold them so)? */
function inStoredOrder(refs: readonly FeatureRef[]): boolean {
  for (let c = 0; c < refs.length; c++) if (refs[c]!.feature.index !== c) return false;
  return true;
}

const ascii = (s: string) => new TextEncoder().encode(s);

const HEAD_JSON = 0;
const HEAD_JSON_FULL = 1;
const HEAD_MSGPACK = 2;
const HEAD_MSGPACK_FULL = 3;
const J_OPEN_NAMES = ascii('{"featureNames":[');
const J_ROWS = ascii('],"rows":[');
const J_ROW_FIRST = ascii('{"values":[');
const J_ROW_NEXT = ascii(',{"values":[');
const J_STATUSES = ascii('],"statuses":[');
const J_TIMESTAMPS = ascii('],"eventTimestamps":[');
const J_ROW_CLOSE = ascii("]}");
const J_CLOSE = ascii("]}");
const J_DEGRADED = ascii('],"degraded":[');
const J_STALE = ascii('],"stale":[');
const J_STATUS = STATUS_NAMES.map((n) => ascii(JSON.stringify(n)));

/** Fixed-map and key bytes, as @msgpack/msgpack writes them. */
function mpKey(s: string): number[] {
  return [0xa0 | s.length, ...ascii(s)];
}
const M_OPEN_NAMES = new Uint8Array([0x82, ...mpKey("featureNames")]);
const M_ROWS = new Uint8Array(mpKey("rows"));
/** The answer's map with a third key, `degraded`, after `rows`. */
const M_OPEN_NAMES_DEGRADED = new Uint8Array([0x83, ...mpKey("featureNames")]);
const M_DEGRADED = new Uint8Array(mpKey("degraded"));
const M_ROW_VALUES = new Uint8Array([0x83, ...mpKey("values")]);
/** A row of an answer holding stale values: a fourth key, `stale`, after `eventTimestamps`. */
const M_ROW_VALUES_STALE = new Uint8Array([0x84, ...mpKey("values")]);
const M_STALE = new Uint8Array(mpKey("stale"));
const M_STATUSES = new Uint8Array(mpKey("statuses"));
const M_TIMESTAMPS = new Uint8Array(mpKey("eventTimestamps"));
const M_STATUS = STATUS_NAMES.map((n) => new Uint8Array(mpKey(n)));
