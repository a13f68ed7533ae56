/**
 * Canonical storage keys. One layout everywhere (embedded nodes, Redis shards,
 * caches) so data moves between them unchanged:
 *
 *   <view>@<version>/<entityKey>
 *   entityKey = <joinKey>=<typed value> [";" <joinKey>=<typed value>]...
 *   typed value = "i" <decimal int64>  |  "s" <length> ":" <string>
 *
 * Join keys appear in the entity's declared order. The type tag keeps the int
 * 1001 and the string "1001" apart; the length prefix makes any string safe
 * (no escaping, no ambiguity with ";" or "="). The ring routes by `entityKey`
 * alone, so every view of one entity lives on the same shard and a request
 * costs one round trip per shard.
 */

import { inInt64Range } from "./int64.ts";

/** Types a join key may have. */
export type JoinKeyType = "int64" | "string";

/**
 * Encodes one join-key value after `prefix` (a view's key prefix or the parts
 * before it: one string built, not a chain); the caller has checked its type.
 */
export function encodeKeyPart(name: string, type: JoinKeyType, value: number | string, prefix = ""): string {
  return type === "int64" ? `${prefix}${name}=i${value}` : `${prefix}${name}=s${(value as string).length}:${value}`;
}

/** What every key part of a join key starts with, `<name>=i` or `<name>=s`: the type tag without the value (byte-built keys start from it). */
export function keyPartHead(name: string, type: JoinKeyType): string {
  return `${name}=${type === "int64" ? "i" : "s"}`;
}

/** The storage key of a view's row for an entity key. */
export function storageKey(viewPrefix: string, entityKey: string): string {
  return viewPrefix + entityKey;
}

/** The prefix every key of a view version starts with (`<view>@<version>/`). */
export function viewKeyPrefix(view: string, version: number): string {
  return `${view}@${version}/`;
}

/** Where the part of a storage key the ring routes by starts (hash from there: no substring). */
export function ringKeyStart(key: string): number {
  return key.indexOf("/") + 1;
}

/** The part of a storage key the ring routes by. */
export function ringKeyOf(key: string): string {
  const slash = key.indexOf("/");
  return slash < 0 ? key : key.slice(slash + 1);
}

/** A join key's name: an identifier (the registry allows no other). */
const JOIN_KEY_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The join-key values of an entity key (`<name>=i<int>` / `<name>=s<len>:<text>`
 * parts joined by ";"), the inverse of encodeKeyPart; undefined for anything
 * else. For tools that start from stored keys (sampling, maintenance).
 */
export function parseEntityKey(entityKey: string): Map<string, number | string> | undefined {
  const out = new Map<string, number | string>();
  let p = 0;
  while (p < entityKey.length) {
    const eq = entityKey.indexOf("=", p);
    if (eq <= p || eq + 1 >= entityKey.length) return undefined;
    const name = entityKey.slice(p, eq);
    if (!JOIN_KEY_NAME.test(name)) return undefined;
    const tag = entityKey[eq + 1];
    if (tag === "i") {
      let end = entityKey.indexOf(";", eq + 2);
      if (end < 0) end = entityKey.length;
      const digits = entityKey.slice(eq + 2, end);
      if (!/^-?\d+$/.test(digits)) return undefined;
      const value = Number(digits);
      if (Number.isSafeInteger(value)) out.set(name, value);
      // Past 2^53 its decimal text, which join keys take as the same key (the number would round).
      else if (digits.length <= 20 && inInt64Range(BigInt(digits))) out.set(name, digits);
      else return undefined;
      p = end;
    } else if (tag === "s") {
      const colon = entityKey.indexOf(":", eq + 2);
      const lengthText = colon < 0 ? "" : entityKey.slice(eq + 2, colon);
      if (!/^\d+$/.test(lengthText)) return undefined;
      const end = colon + 1 + Number(lengthText);
      if (end > entityKey.length || (end < entityKey.length && entityKey[end] !== ";")) return undefined;
      out.set(name, entityKey.slice(colon + 1, end));
      p = end;
    } else {
      return undefined;
    }
    // After a part: the end, or ";" and another part.
    if (p === entityKey.length) return out;
    p++;
  }
  return undefined;
}
