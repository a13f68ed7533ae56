import { digests } from "../runtime/digest.ts";

/**
 * Last-write-wins batch put, run atomically inside Redis so concurrent writers,
 * retries and out-of-order events can never regress a value.
 *
 * KEYS[i] receives ARGV[i] (row-codec bytes) only when the incoming event time
 * (bytes 0..8, float64 big-endian) is strictly newer than the stored one.
 * Keys are processed in order, so a key repeated in one batch competes with
 * the earlier entry exactly like two separate writes would.
 * Returns { written, ignored, sameTime } (sameTime: the ignored ones whose
 * stored event time equals theirs, PutOutcome.sameTime).
 */
export const LWW_PUT_LUA = `
local written, ignored, same = 0, 0, 0
for i = 1, #KEYS do
  local incoming = ARGV[i]
  local current = redis.call('GET', KEYS[i])
  local stored = nil
  if current and string.len(current) >= 8 then stored = struct.unpack('>d', current) end
  local ts = struct.unpack('>d', incoming)
  if stored and stored >= ts then
    ignored = ignored + 1
    if stored == ts then same = same + 1 end
  else
    redis.call('SET', KEYS[i], incoming)
    written = written + 1
  end
end
return { written, ignored, same }
`;

/** SHA1 of the script, for EVALSHA (one script call per batch). */
export const LWW_PUT_SHA = digests.sha1Hex(LWW_PUT_LUA);

/** Escapes Redis glob characters so a key prefix matches literally in SCAN MATCH. */
export function globEscape(prefix: string): string {
  return prefix.replace(/[\\*?[\]]/g, "\\$&");
}

/**
 * Compare-and-delete for rebalancing: KEYS[i] is deleted only when its stored
 * event time is not newer than ARGV[i] (an 8-byte float64 BE header, the time
 * of the copy the caller already placed elsewhere). Returns the 1-based
 * indexes of keys kept because a newer row arrived meanwhile, so the caller
 * copies those again instead of losing them.
 */
export const DELETE_IF_NOT_NEWER_LUA = `
local kept = {}
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current then
    if string.len(current) >= 8 and struct.unpack('>d', current) > struct.unpack('>d', ARGV[i]) then
      kept[#kept + 1] = i
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return kept
`;

export const DELETE_IF_NOT_NEWER_SHA = digests.sha1Hex(DELETE_IF_NOT_NEWER_LUA);

/**
 * Where a shard keeps the layout ledger (kv/layout-ledger.ts): one hash,
 * `<view>@<version>` → its features as `name:type` lines (and `<view>@<version>#keys` → its join keys,
 * registry/layout-ledger.ts). Not a row: scans skip
 * it (RedisKvNode.scan skips RECORD_KEY_PREFIX), and no view's keys can take its
 * name (view names are identifiers, without `:`).
 */
export const LAYOUT_LEDGER_KEY = "quiver:layouts";

/** Keys under this prefix hold Quiver's own records beside the rows (the layout ledger, the key placement); never rows. */
export const RECORD_KEY_PREFIX = "quiver:";

/** Where a shard records how its keys are placed (shard/placement.ts): one JSON string. */
export const PLACEMENT_KEY = "quiver:placement";

/**
 * The ledger's reconciliation, atomic on one server. KEYS[1] the ledger hash;
 * ARGV[1] `check` (write nothing) or `record`, then field, layout pairs. A
 * layout is recorded when new or when it appends to the stored one, and kept
 * when the stored one appends to it; any other stored layout is a conflict,
 * and then nothing is written. Answers the conflicts as field, stored pairs
 * (empty when all was recorded or kept).
 */
export const LAYOUT_LEDGER_LUA = `
local function extends(base, longer)
  return longer == base or string.sub(longer, 1, #base + 1) == base .. "\\n"
end
local conflicts = {}
local writes = {}
for i = 2, #ARGV, 2 do
  local field, want = ARGV[i], ARGV[i + 1]
  local have = redis.call("HGET", KEYS[1], field)
  if not have or (have ~= want and extends(have, want)) then
    writes[#writes + 1] = field
    writes[#writes + 1] = want
  elseif not extends(want, have) then
    conflicts[#conflicts + 1] = field
    conflicts[#conflicts + 1] = have
  end
end
if ARGV[1] == "record" and #conflicts == 0 and #writes > 0 then redis.call("HSET", KEYS[1], unpack(writes)) end
return conflicts
`;
