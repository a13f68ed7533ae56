import { encode as encodeMsgpack } from "@msgpack/msgpack";
import type { Prng } from "./prng.ts";
import type { KeySampler } from "./keys.ts";

/** How an entity index becomes a join-key value: 1001 + i, or "c" + i (the demo data). */
/**
 * Where a join key's values come from: entity index i is `base + i` or
 * `prefix + i`. `size`: the space holds only that many keys (the demo data
 * loads 2,000 claims whatever --entities says), so i wraps round within it:
 * 79 of 100 match requests asked for claims that did not exist.
 */
export type KeySpace = ({ readonly kind: "int"; readonly base: number } | { readonly kind: "string"; readonly prefix: string }) & { readonly size?: number };

/** What a scenario asks for: one HTTP request shape whose key fields are placeholders. */
export interface RequestSpec {
  /** Label for per-kind latency (e.g. "read", "write"). */
  readonly tag: string;
  /** Relative frequency among the scenario's requests. */
  readonly weight: number;
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: { readonly encoding: "json" | "msgpack"; readonly value: unknown };
}

/**
 * A placeholder for the key of entity row `row` in key space `space`. Rows share
 * one draw, so a composite key (driver_id, customer_id) stays a consistent pair.
 */
export function keyRef(row: number, space: number): string {
  return `@@key:${row}:${space}@@`;
}

export enum SlotKind {
  JsonInt = 0,
  JsonString = 1,
  MsgpackUint32 = 2,
  /** A protobuf varint padded to 5 bytes (gRPC templates, loadtest/grpc/request-bytes.ts). */
  ProtoVarint5 = 3,
}

/**
 * A request compiled to its exact bytes with fixed-width key slots: keys are
 * written into a copy of the bytes per request, so Content-Length never changes
 * and nothing is allocated on the hot path. JSON slots are padded with spaces
 * (valid JSON whitespace); MessagePack int keys are always uint32.
 */
export class RequestTemplate {
  readonly rows: number;
  constructor(
    readonly tag: string,
    readonly bytes: Uint8Array,
    private readonly slotOffset: Int32Array,
    private readonly slotWidth: Int32Array,
    private readonly slotRow: Int32Array,
    private readonly slotKind: Uint8Array,
    private readonly slotSpace: readonly KeySpace[],
  ) {
    let rows = 0;
    for (const r of slotRow) rows = Math.max(rows, r + 1);
    this.rows = rows;
  }

  /** Draws one key per row and writes them into `buf` (a copy of `bytes`). */
  fill(buf: Uint8Array, rng: Prng, keys: KeySampler, scratch: Float64Array): void {
    for (let r = 0; r < this.rows; r++) scratch[r] = keys.next(rng);
    const n = this.slotOffset.length;
    for (let i = 0; i < n; i++) {
      const space = this.slotSpace[i] as KeySpace;
      const drawn = scratch[this.slotRow[i] ?? 0] ?? 0;
      const idx = space.size !== undefined && drawn >= space.size ? drawn % space.size : drawn;
      const off = this.slotOffset[i] ?? 0;
      const width = this.slotWidth[i] ?? 0;
      const kind = this.slotKind[i];
      if (kind === SlotKind.JsonInt) writeDigitsRight(buf, off, width, (space as { base: number }).base + idx);
      else if (kind === SlotKind.JsonString) writeJsonString(buf, off, width, (space as { prefix: string }).prefix, idx);
      else if (kind === SlotKind.ProtoVarint5) writeVarint5(buf, off, (space as { base: number }).base + idx);
      else writeUint32(buf, off + 1, (space as { base: number }).base + idx);
    }
  }

  /** The request with the given entity indexes (for tests and fixtures). */
  render(indexes: readonly number[]): Uint8Array {
    const buf = this.bytes.slice();
    const seq = { i: 0 };
    const fake = { next: () => indexes[seq.i++ % indexes.length] ?? 0, description: "fixed" };
    this.fill(buf, null as unknown as Prng, fake, new Float64Array(Math.max(1, this.rows)));
    return buf;
  }
}

/** Compiles a spec to request bytes for `host` with slots wide enough for `entities` keys. */
export function compileRequest(spec: RequestSpec, spaces: readonly KeySpace[], entities: number, host: string): RequestTemplate {
  const enc = new TextEncoder();
  const offsets: number[] = [];
  const widths: number[] = [];
  const rows: number[] = [];
  const kinds: number[] = [];
  const slotSpaces: KeySpace[] = [];
  let body: Uint8Array = new Uint8Array(0);
  const headers: Record<string, string> = { ...(spec.headers ?? {}) };
  if (spec.body?.encoding === "json") {
    const text = JSON.stringify(spec.body.value);
    const parts: Uint8Array[] = [];
    let size = 0;
    let last = 0;
    for (const m of text.matchAll(/"@@key:(\d+):(\d+)@@"/g)) {
      const lit = enc.encode(text.slice(last, m.index));
      parts.push(lit);
      size += lit.length;
      const space = spaceAt(spaces, Number(m[2]));
      const width = space.kind === "int" ? digits(space.base + entities - 1) : 2 + space.prefix.length + digits(entities - 1);
      offsets.push(size);
      widths.push(width);
      rows.push(Number(m[1]));
      kinds.push(space.kind === "int" ? SlotKind.JsonInt : SlotKind.JsonString);
      slotSpaces.push(space);
      parts.push(new Uint8Array(width).fill(32));
      size += width;
      last = m.index + m[0].length;
    }
    parts.push(enc.encode(text.slice(last)));
    body = concat(parts);
    headers["Content-Type"] ??= "application/json";
  } else if (spec.body?.encoding === "msgpack") {
    body = encodeMsgpack(replacePlaceholders(spec.body.value, spaces, offsets, rows, slotSpaces));
    // Placeholders were encoded as uint32 0xCE followed by a marker; find them in order.
    let from = 0;
    for (let i = 0; i < rows.length; i++) {
      const at = findMarker(body, markerFor(i), from);
      if (at < 0) throw new Error("msgpack template: placeholder not found");
      offsets[i] = at;
      widths.push(5);
      kinds.push(SlotKind.MsgpackUint32);
      from = at + 5;
    }
    headers["Content-Type"] ??= "application/msgpack";
  }
  let head = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (spec.body !== undefined) head += `Content-Length: ${body.length}\r\n`;
  head += "\r\n";
  const headBytes = enc.encode(head);
  const bytes = concat([headBytes, body]);
  const shifted = offsets.map((o) => o + headBytes.length);
  return new RequestTemplate(spec.tag, bytes, Int32Array.from(shifted), Int32Array.from(widths), Int32Array.from(rows), Uint8Array.from(kinds), slotSpaces);
}

function spaceAt(spaces: readonly KeySpace[], i: number): KeySpace {
  const s = spaces[i];
  if (s === undefined) throw new Error(`template: unknown key space ${i}`);
  return s;
}

/** Marker i: 0xF1 0x5A then a 16-bit slot number, as a uint32 no real key uses. */
function markerFor(i: number): number {
  return 0xf15a0000 + i;
}

function replacePlaceholders(v: unknown, spaces: readonly KeySpace[], offsets: number[], rows: number[], slotSpaces: KeySpace[]): unknown {
  if (typeof v === "string") {
    const m = /^@@key:(\d+):(\d+)@@$/.exec(v);
    if (m === null) return v;
    const space = spaceAt(spaces, Number(m[2]));
    if (space.kind !== "int") throw new Error("msgpack scenarios support int join keys only");
    offsets.push(0);
    rows.push(Number(m[1]));
    slotSpaces.push(space);
    return markerFor(rows.length - 1);
  }
  if (Array.isArray(v)) return v.map((x) => replacePlaceholders(x, spaces, offsets, rows, slotSpaces));
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = replacePlaceholders(x, spaces, offsets, rows, slotSpaces);
    return out;
  }
  return v;
}

function findMarker(buf: Uint8Array, marker: number, from: number): number {
  for (let i = from; i + 4 < buf.length; i++) if (buf[i] === 0xce && readUint32(buf, i + 1) === marker) return i;
  return -1;
}

function readUint32(buf: Uint8Array, at: number): number {
  return ((buf[at] ?? 0) * 0x1000000 + ((buf[at + 1] ?? 0) << 16) + ((buf[at + 2] ?? 0) << 8) + (buf[at + 3] ?? 0)) >>> 0;
}

function writeUint32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 24) & 0xff;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

/** Writes v right-aligned in [off, off+width), spaces to its left. */
function writeDigitsRight(buf: Uint8Array, off: number, width: number, v: number): void {
  let p = off + width - 1;
  let x = v;
  do {
    buf[p--] = 48 + (x % 10);
    x = Math.floor(x / 10);
  } while (x > 0 && p >= off);
  while (p >= off) buf[p--] = 32;
}

/** Writes "prefix<idx>" then pads with spaces after the closing quote. */
function writeJsonString(buf: Uint8Array, off: number, width: number, prefix: string, idx: number): void {
  let p = off;
  buf[p++] = 34;
  for (let i = 0; i < prefix.length; i++) buf[p++] = prefix.charCodeAt(i);
  const nd = digits(idx);
  let q = p + nd - 1;
  let x = idx;
  do {
    buf[q--] = 48 + (x % 10);
    x = Math.floor(x / 10);
  } while (x > 0);
  p += nd;
  buf[p++] = 34;
  while (p < off + width) buf[p++] = 32;
}

function digits(v: number): number {
  let n = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) n++;
  return n;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A varint in exactly 5 bytes (values below 2^35): continuation bits on the first four. */
function writeVarint5(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v & 0x7f) | 0x80;
  buf[off + 1] = ((v >>> 7) & 0x7f) | 0x80;
  buf[off + 2] = ((v >>> 14) & 0x7f) | 0x80;
  buf[off + 3] = ((v >>> 21) & 0x7f) | 0x80;
  buf[off + 4] = Math.floor(v / 2 ** 28) & 0x7f;
}
