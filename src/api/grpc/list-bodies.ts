import { afterStoredScalar, storedArrayLength, storedArrayStart, storedInt64Or0, storedNumberOr0, storedStringLength, storedStringStart } from "../../kv/stored-value.ts";
import type { ValueType } from "../../registry/value-types.ts";
import { int64Or0, numberOr0, stringOrEmpty } from "./column-values.ts";
import type { ProtoWriter } from "./proto-writer.ts";
import { int64Size, nested, stringFieldSize, varint32Size } from "./wire-size.ts";

/**
 * The bodies of the list messages both gRPC APIs share — Int64List,
 * DoubleList (also embeddings), StringList: `repeated ... val = 1`, numbers
 * packed — from a decoded list or straight from a stored MessagePack list.
 * Each encoder writes its own tag and the body's length before the body (a
 * quiver.v1 column's list field, a Feast Value's oneof), so a list is
 * measured first (`*ListContent`: the packed numbers' size, or the string
 * fields'), then written with that measure. Elements of another type are
 * written as column-values.ts says (0, "").
 */
export type ListKind = Extract<ValueType["kind"], "int64[]" | "float64[]" | "embedding" | "string[]">;

/** The list's content size: its packed numbers, or its string fields. */
export function listContent(kind: ListKind, list: readonly unknown[]): number {
  let size = 0;
  if (kind === "string[]") for (const x of list) size += stringFieldSize(stringOrEmpty(x));
  else if (kind === "int64[]") for (const x of list) size += int64Size(int64Or0(x));
  else size = list.length * 8;
  return size;
}

/** Body size of a list message of `count` elements whose content size is `content`. */
export function listBody(kind: ListKind, count: number, content: number): number {
  return kind === "string[]" || count === 0 ? content : nested(1, content);
}

/** The list message's body for `list`, whose content size is `content` (listContent). */
export function writeListBody(w: ProtoWriter, kind: ListKind, list: readonly unknown[], content: number): void {
  if (list.length === 0) return;
  if (kind === "string[]") {
    for (const x of list) w.uint32(10).string(stringOrEmpty(x));
    return;
  }
  w.uint32(10).uint32(content);
  if (kind === "int64[]") for (const x of list) w.int64(int64Or0(x));
  else for (const x of list) w.double(numberOr0(x));
}

/** Elements of the list stored at `p` (0 when what is stored there is not a list: written as an empty one). */
export function storedListCount(bytes: Uint8Array, view: DataView, p: number): number {
  return Math.max(0, storedArrayLength(bytes, view, p));
}

/** The content size (as listContent) of the list stored at `p`, of `count` elements. */
export function storedListContent(kind: ListKind, bytes: Uint8Array, view: DataView, p: number, count: number): number {
  if (count === 0) return 0;
  if (kind !== "int64[]" && kind !== "string[]") return count * 8;
  let size = 0;
  const first = storedArrayStart(bytes, p);
  if (kind === "int64[]") {
    for (let k = 0, q = first; k < count; k++, q = afterStoredScalar(bytes, view, q)) size += int64Size(storedInt64Or0(bytes, view, q));
    return size;
  }
  for (let k = 0, q = first; k < count; k++, q = afterStoredScalar(bytes, view, q)) {
    const len = Math.max(0, storedStringLength(bytes, view, q));
    size += 1 + varint32Size(len) + len;
  }
  return size;
}

/** The list message's body for the list stored at `p` (`count` elements, content size `content`); strings copied as their stored UTF-8. */
export function writeStoredListBody(w: ProtoWriter, kind: ListKind, bytes: Uint8Array, view: DataView, p: number, count: number, content: number): void {
  if (count === 0) return;
  const first = storedArrayStart(bytes, p);
  if (kind === "string[]") {
    for (let k = 0, q = first; k < count; k++, q = afterStoredScalar(bytes, view, q)) {
      const len = storedStringLength(bytes, view, q);
      const s = len < 0 ? q : storedStringStart(bytes, q);
      w.uint32(10).stringBytes(bytes, s, s + Math.max(0, len));
    }
    return;
  }
  w.uint32(10).uint32(content);
  if (kind === "int64[]") for (let k = 0, q = first; k < count; k++, q = afterStoredScalar(bytes, view, q)) w.int64(storedInt64Or0(bytes, view, q));
  else for (let k = 0, q = first; k < count; k++, q = afterStoredScalar(bytes, view, q)) w.double(storedNumberOr0(bytes, view, q));
}
