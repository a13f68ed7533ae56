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
