import { type KeySpace, RequestTemplate, SlotKind } from "../template.ts";

/**
 * gRPC request messages compiled to protobuf bytes with fixed-width key
 * slots, like the HTTP templates: every int64 join key is written as a 5-byte
 * varint (non-minimal varints are valid protobuf and every decoder reads
 * them), so a request is a copy of the bytes plus five byte writes per key.
 * Only integer key spaces fit a fixed width; string keys would change lengths.
 */

class Bytes {
  private readonly out: number[] = [];
  /** Offsets (into this message) of the key slots written so far. */
  readonly slots: number[] = [];
  get length(): number {
    return this.out.length;
  }
  varint(v: number): this {
    while (v > 0x7f) {
      this.out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.out.push(v);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  string(field: number, s: string): this {
    const b = new TextEncoder().encode(s);
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.out.push(x);
    return this;
  }
  /** A nested message (field, length, bytes), keeping its slots. */
  message(field: number, inner: Bytes): this {
    this.tag(field, 2).varint(inner.length);
    const base = this.out.length;
    for (const s of inner.slots) this.slots.push(base + s);
    for (const x of inner.out) this.out.push(x);
    return this;
  }
  keySlot(): this {
    this.slots.push(this.out.length);
    this.out.push(0x80, 0x80, 0x80, 0x80, 0x00);
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

function intSpace(space: KeySpace, key: string): KeySpace & { kind: "int" } {
  if (space.kind !== "int") throw new Error(`gRPC scenarios take integer join keys only (fixed-width key slots); "${key}" is a string key`);
  return space;
}

function template(tag: string, msg: Bytes, rows: number, spaces: readonly KeySpace[]): RequestTemplate {
  const n = msg.slots.length;
  return new RequestTemplate(
    tag,
    msg.bytes(),
    Int32Array.from(msg.slots),
    new Int32Array(n).fill(5),
    Int32Array.from({ length: n }, (_, i) => i % rows),
    new Uint8Array(n).fill(SlotKind.ProtoVarint5),
    spaces,
  );
}

/** quiver.v1.LookupRequest: features (1), one EntityColumn per join key (3) with packed int64_values, fill_defaults (4). */
export function quiverLookupTemplate(tag: string, refs: readonly string[], key: { name: string; space: KeySpace }, rows: number): RequestTemplate {
  const space = intSpace(key.space, key.name);
  const msg = new Bytes();
  for (const r of refs) msg.string(1, r);
  const packed = new Bytes();
  for (let r = 0; r < rows; r++) packed.keySlot();
  const column = new Bytes().string(1, key.name).message(2, packed);
  msg.message(3, column);
  msg.tag(4, 0).varint(1);
  return template(tag, msg, rows, new Array<KeySpace>(rows).fill(space));
}

/** feast.serving.GetOnlineFeaturesRequest: features (2) as a FeatureList, entities (3) map entry with one Value{int64_val} per row. */
export function feastLookupTemplate(tag: string, refs: readonly string[], key: { name: string; space: KeySpace }, rows: number): RequestTemplate {
  const space = intSpace(key.space, key.name);
  const list = new Bytes();
  for (const r of refs) list.string(1, r);
  const values = new Bytes();
  for (let r = 0; r < rows; r++) values.message(1, new Bytes().tag(4, 0).keySlot());
  const entry = new Bytes().string(1, key.name).message(2, values);
  const msg = new Bytes().message(2, list).message(3, entry);
  return template(tag, msg, rows, new Array<KeySpace>(rows).fill(space));
}
