import { canonicalInt64 } from "../kv/int64.ts";
import type { JoinKey } from "../registry/index.ts";

/**
 * The join-key object of an entity key (the inverse of src/kv/keys.ts):
 * `claim_id=i42` → `{ claim_id: 42 }`. int64 values beyond 2^53 come back as
 * bigints (src/kv/int64.ts): JSON answers print them as exact integer
 * literals, as every other int64 (they were decimal strings). Undefined when
 * the key does not follow the layout (never for keys the store wrote).
 */
export function decodeEntityKey(entityKey: string, joinKeys: readonly JoinKey[]): Record<string, number | bigint | string> | undefined {
  const out: Record<string, number | bigint | string> = {};
  let at = 0;
  for (let j = 0; j < joinKeys.length; j++) {
    const k = joinKeys[j]!;
    if (j > 0) {
      if (entityKey[at] !== ";") return undefined;
      at++;
    }
    if (!entityKey.startsWith(`${k.name}=`, at)) return undefined;
    at += k.name.length + 1;
    const tag = entityKey[at++];
    if (tag === "i") {
      let end = entityKey.indexOf(";", at);
      if (end < 0) end = entityKey.length;
      const text = entityKey.slice(at, end);
      const n = Number(text);
      // Keys the store wrote hold at most a sign and 19 digits (keys.ts): no BigInt of a long text.
      if (Number.isSafeInteger(n)) out[k.name] = n;
      else if (/^-?\d{1,19}$/.test(text)) out[k.name] = canonicalInt64(BigInt(text));
      else return undefined;
      at = end;
    } else if (tag === "s") {
      const colon = entityKey.indexOf(":", at);
      if (colon < 0) return undefined;
      const len = Number(entityKey.slice(at, colon));
      out[k.name] = entityKey.slice(colon + 1, colon + 1 + len);
      at = colon + 1 + len;
    } else return undefined;
  }
  return at === entityKey.length ? out : undefined;
}
